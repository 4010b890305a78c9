"""Run folders for export tests, made without training: a tiny base and a random LoRA adapter.

    run_dir = make_run(root, "TinyLlama/TinyLlama-1.1B-Chat-v1.0", cache)

The folder has what `slothlab export` reads from a finished tiny run (recipe.yaml,
events.jsonl, base/, adapter/ with the tokenizer); the adapter's A and B are both random
(peft's ``init_lora_weights=False``), so merging it changes every targeted weight.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from recipes.models import model_info
from recipes.rundir import ADAPTER, BASE, EVENTS_FILE, RECIPE_FILE
from recipes.schema import Recipe, dump_recipe

ROOT = Path(__file__).resolve().parents[1]
DEMO_DATA = str(ROOT / "data" / "demo_qa.jsonl")


def tiny_recipe(model: str, **fields) -> Recipe:
    name = fields.pop("name", model.rstrip("/").split("/")[-1].lower())
    info = model_info(model)
    fields.setdefault("target_modules", list(info.linear_modules) if info else
                      ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    fields.setdefault("tiny", True)
    return Recipe(name=name, model=model, dataset=DEMO_DATA, sample_dataset=DEMO_DATA,
                  dataset_format="sharegpt", max_seq_length=128, max_new_tokens=24, **fields)


def make_run(root: Path, model: str, cache: Path, **fields) -> Path:
    """A finished-looking run of ``model``: a tiny run of a known model, or (``tiny=False``) a
    run whose base is the local model folder ``model``."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from recipes.data.prepare import load_examples
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    recipe = tiny_recipe(model, **fields)
    run_dir = root / f"20261201-000000-{recipe.name}"
    run_dir.mkdir(parents=True)
    (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe), encoding="utf-8")
    (run_dir / EVENTS_FILE).write_text("", encoding="utf-8")
    if recipe.tiny:
        examples, _, _ = load_examples(recipe, recipe.dataset)
        shutil.copytree(build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache),
                        run_dir / BASE)
    base_dir = run_dir / BASE if recipe.tiny else Path(model)
    torch.manual_seed(1)
    base = AutoModelForCausalLM.from_pretrained(base_dir, dtype=torch.float32)
    config = LoraConfig(r=8, lora_alpha=16, target_modules=recipe.target_modules,
                        init_lora_weights=False, task_type="CAUSAL_LM")
    model_with_adapter = get_peft_model(base, config)
    model_with_adapter.save_pretrained(run_dir / ADAPTER)
    AutoTokenizer.from_pretrained(base_dir).save_pretrained(run_dir / ADAPTER)
    return run_dir
