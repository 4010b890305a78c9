"""The seed recipes: their samples load, masking on their real templates, tiny runs end to end."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.data.prepare import load_examples
from recipes.data.render import Renderer, tokenize
from recipes.data.types import IGNORE_INDEX
from recipes.errors import DataError
from recipes.host import PROJECT_ROOT
from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import data_source, load_recipe

SEEDS = ("finetome-llama3.2-3b", "medqa-tinyllama", "saudial-lfm2", "inkuba-multitask")


def recipe(name: str, *overrides: str):
    return load_recipe(bundled()[name], overrides=list(overrides))


def loaded(name: str, *overrides: str):
    r = recipe(name, "tiny=true", *overrides)
    return r, load_examples(r, data_source(r), base_dirs=[PROJECT_ROOT])


def trained_text(tokenizer, tok) -> str:
    return tokenizer.decode([i for i, lab in zip(tok.input_ids, tok.labels, strict=True)
                             if lab != IGNORE_INDEX])


def test_write_up_hyperparameters() -> None:
    finetome = recipe("finetome-llama3.2-3b")
    assert (finetome.batch_size, finetome.gradient_accumulation_steps, finetome.epochs,
            finetome.learning_rate, finetome.warmup_steps, finetome.weight_decay,
            finetome.optimizer, finetome.lora_r, finetome.lora_alpha, finetome.test_fraction,
            finetome.max_seq_length) == (2, 4, 1.0, 2e-4, 5, 0.01, "adamw_8bit", 16, 16, 0.15, 2048)
    medqa = recipe("medqa-tinyllama")
    assert (medqa.lora_r, medqa.lora_alpha, medqa.lora_dropout, medqa.target_modules,
            medqa.effective_batch_size, medqa.max_steps, medqa.learning_rate, medqa.seed,
            medqa.save_steps, medqa.logging_steps) == (
        8, 16, 0.05, ["q_proj", "k_proj", "v_proj"], 32, 400, 2e-4, 42, 50, 50)
    assert (medqa.val_fraction, medqa.test_fraction) == (0.1, 0.1)
    saudial = recipe("saudial-lfm2")
    assert (saudial.lora_r, saudial.lora_alpha, saudial.target_modules, saudial.max_seq_length,
            saudial.gradient_accumulation_steps, saudial.learning_rate, saudial.compute_dtype) == (
        8, 16, ["q_proj", "v_proj"], 512, 8, 2e-4, "float16")


def test_tiny_overrides_apply_and_set_wins() -> None:
    assert recipe("finetome-llama3.2-3b").max_steps == 0
    assert recipe("finetome-llama3.2-3b", "tiny=true").max_steps == 300
    assert recipe("finetome-llama3.2-3b", "tiny=true", "max_steps=7").max_steps == 7


def test_finetome_sample_keeps_system_turns() -> None:
    _, data = loaded("finetome-llama3.2-3b")
    assert len(data.examples) == data.n_rows > 100
    roles = {m["role"] for e in data.examples for m in e.messages}
    assert roles == {"system", "user", "assistant"}
    assert any(sum(m["role"] == "assistant" for m in e.messages) == 2 for e in data.examples)


def test_medqa_merges_cleans_and_reports() -> None:
    r, data = loaded("medqa-tinyllama")
    assert data.skipped == {"AfriMed-QA mcq (not free text)": 6, "empty answer (row 71)": 1,
                            "duplicate (rows 70, 72)": 2, "longer than max_chars=4000 (row 73)": 1}
    assert any("merged" in n and "AfriMed-QA" in n for n in data.notes)
    questions = [e.fields["instruction"] for e in data.examples]
    assert "What are the symptoms of Asthma ?" in questions, "whitespace is normalised"
    assert any(q.startswith("How can I protect") for q in questions), "AfriMed-QA rows are in"


def test_medqa_without_afrimed_runs_on_medquad_and_says_so(tmp_path: Path) -> None:
    _, data = loaded("medqa-tinyllama", f"sample_extra_datasets=[{tmp_path / 'gated.csv'}]")
    assert any("MedQuAD alone" in n for n in data.notes)
    assert not any(q.fields["instruction"].startswith("How can I") for q in data.examples)


def test_saudial_is_forgiving_and_counts_what_it_skipped() -> None:
    _, data = loaded("saudial-lfm2")
    assert data.skipped == {"blank row": 3, "missing English text or translation": 2}
    first = data.examples[0].fields
    assert first["instruction"].startswith("Translate the following English text to Saudi "
                                           "Dialect (Najdi).\nContext: ")
    assert first["input"] == "Where are you going?" and first["response"] == "وين رايح؟"


def test_saudial_missing_column_names_what_is_there(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "SauDial.xlsx"
    pd.DataFrame({"English": ["hi"], "Translation": ["هلا"]}).to_excel(path, index=False)
    with pytest.raises(DataError) as info:
        loaded("saudial-lfm2", f"dataset={path}")
    assert "dialect" in info.value.what and "'English', 'Translation'" in info.value.what


def test_finetome_masking_on_the_llama3_template(tiny_llama3_tokenizer) -> None:
    r, data = loaded("finetome-llama3.2-3b")
    ex = next(e for e in data.examples if e.messages[0]["role"] == "system"
              and sum(m["role"] == "assistant" for m in e.messages) == 2)
    [t] = tokenize([ex], Renderer(tiny_llama3_tokenizer, r), r.max_seq_length)
    answers = [m["content"] for m in ex.messages if m["role"] == "assistant"]
    assert trained_text(tiny_llama3_tokenizer, t) == "<|eot_id|>".join(answers) + "<|eot_id|>"


def test_medqa_masking_on_the_instruction_template(tiny_llama_tokenizer) -> None:
    r, data = loaded("medqa-tinyllama")
    [t] = tokenize(data.examples[:1], Renderer(tiny_llama_tokenizer, r), r.max_seq_length)
    text = tiny_llama_tokenizer.decode(t.input_ids)
    assert "### Instruction:\n" in text and "\n\n### Response:\n" in text
    assert trained_text(tiny_llama_tokenizer, t) == data.examples[0].fields["response"] + "</s>"


def test_saudial_masking_on_the_lfm2_tokenizer(tiny_lfm2_tokenizer) -> None:
    r, data = loaded("saudial-lfm2")
    [t] = tokenize(data.examples[:1], Renderer(tiny_lfm2_tokenizer, r), r.max_seq_length)
    assert trained_text(tiny_lfm2_tokenizer, t) == "وين رايح؟<|im_end|>"
    prompt = tiny_lfm2_tokenizer.decode(t.input_ids[:next(
        i for i, lab in enumerate(t.labels) if lab != IGNORE_INDEX)])
    assert prompt.endswith("### Input:\nWhere are you going?\n\n### Response:\n")


@pytest.mark.slow
@pytest.mark.parametrize("name", SEEDS)
def test_tiny_run_end_to_end(name: str, runs_dir: Path, tiny_cache: Path) -> None:
    r = recipe(name, "tiny=true", "max_steps=3", "eval_steps=0", "eval_samples=2",
               "max_new_tokens=4", "logging_steps=1")
    run_dir = run(r, RunOptions(runs_root=runs_dir, cache_dir=tiny_cache))
    events = ev.read_events(run_dir / "events.jsonl")
    assert events[-1].type == "finished", events[-1]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    config = json.loads((run_dir / "base" / "config.json").read_text(encoding="utf-8"))
    expected = {"finetome-llama3.2-3b": "LlamaForCausalLM", "medqa-tinyllama": "LlamaForCausalLM",
                "saudial-lfm2": "Lfm2ForCausalLM", "inkuba-multitask": "LlamaForCausalLM"}[name]
    assert config["architectures"] == [expected]
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert set(adapter["target_modules"]) == set(r.target_modules)


@pytest.mark.parametrize("name", SEEDS)
def test_real_mode_without_the_hub_fails_fast(name: str, runs_dir: Path, capsys) -> None:
    from tui.cli import main

    code = main(["--recipe", name, "--runs-dir", str(runs_dir)])
    err = capsys.readouterr().err
    assert code == 2 and not list(runs_dir.iterdir())
    assert "--tiny" in err or "dataset file not found" in err, err


def test_inkuba_reads_three_task_files_with_task_and_language() -> None:
    r, data = loaded("inkuba-multitask")
    assert r.trust_remote_code, "InkubaLM needs remote code, and the recipe asks for it"
    groups = {(e.meta["task"], e.meta["lang"]) for e in data.examples}
    assert groups == {("sentiment", "swa"), ("sentiment", "hau"), ("xnli", "swa"),
                      ("xnli", "hau"), ("mt", "swa"), ("mt", "hau")}


def test_remote_code_is_never_enabled_implicitly() -> None:
    assert not any(recipe(n).trust_remote_code for n in bundled() if n != "inkuba-multitask")


def test_task_balancing_evens_trained_token_shares(tiny_llama_tokenizer) -> None:
    from recipes.data.prepare import prepare

    r, data = loaded("inkuba-multitask")
    prepared = prepare(r, tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                       source="inkuba")
    shares = prepared.stats["task_shares"]
    before = shares["before"]
    assert before["mt"] == max(before.values()) > 0.4, "MT dominates before balancing"
    assert all(abs(v - 1 / 3) < 0.05 for v in shares["after"].values()), shares["after"]
    unbalanced = prepare(load_recipe(bundled()["inkuba-multitask"],
                                     overrides=["tiny=true", "task_balance=none"]),
                         tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                         source="inkuba")
    assert "after" not in unbalanced.stats["task_shares"]
    assert len(prepared.train) > len(unbalanced.train)


def test_resolved_tiny_recipe_reloads_with_its_set_values(tmp_path: Path) -> None:
    """--resume reloads recipe.yaml: the tiny overrides must not be applied a second time."""
    from recipes.schema import dump_recipe

    r = recipe("finetome-llama3.2-3b", "tiny=true", "max_steps=7")
    path = tmp_path / "recipe.yaml"
    path.write_text(dump_recipe(r), encoding="utf-8")
    again = load_recipe(path)
    assert again.max_steps == 7 and again.learning_rate == 3e-3 and not again.tiny_overrides
