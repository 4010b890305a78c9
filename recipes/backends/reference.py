"""Reference backend: transformers + bitsandbytes NF4 + peft LoRA. Runs anywhere, CPU included.

It is also the multi-GPU path: under ``accelerate launch`` / ``torchrun`` each process puts the
model on its own device (LOCAL_RANK) and TRL's trainer does the rest (DDP or FSDP).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from recipes.errors import SlothlabError
from recipes.schema import Recipe


def resolve_dtype(name: str, device: str) -> Any:
    """The compute dtype: as asked on a GPU (auto = bf16 where supported, else fp16).

    A CPU always computes in fp32: half precision there is slow and some ops lack kernels, and
    the recipes' fp16/bf16 settings describe their GPU runs.
    """
    import torch

    if device != "cuda":
        return torch.float32
    if name != "auto":
        return getattr(torch, name)
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def lora_config(recipe: Recipe) -> Any:
    from peft import LoraConfig

    targets: Any = recipe.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    return LoraConfig(r=recipe.lora_r, lora_alpha=recipe.lora_alpha,
                      lora_dropout=recipe.lora_dropout, target_modules=targets, bias="none",
                      task_type="CAUSAL_LM")


def load_tokenizer(model_path: str | Path, recipe: Recipe) -> Any:
    """The model's tokenizer; a corrupt or missing one is a clear error, not a traceback."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(str(model_path),
                                             trust_remote_code=recipe.trust_remote_code)
    except OSError:
        raise  # not found / no network: load_model() words it
    except Exception as exc:
        raise SlothlabError(
            f"the tokenizer at '{model_path}' is broken ({type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:160]})",
            where="model",
            fix="re-download the model folder (tokenizer.json may be corrupted or hand-edited)",
        ) from None


def load_base(model_path: str | Path, recipe: Recipe, device: str) -> tuple[Any, Any]:
    """The base model (4-bit NF4 with double quantisation when asked) and its tokenizer."""
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig

    dtype = resolve_dtype(recipe.compute_dtype, device)
    quant = None
    if recipe.load_in_4bit:
        quant = BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4",
                                   bnb_4bit_use_double_quant=True, bnb_4bit_compute_dtype=dtype)
    device_map = {"": int(os.environ.get("LOCAL_RANK", 0))} if device == "cuda" else None
    tokenizer = load_tokenizer(model_path, recipe)
    model = AutoModelForCausalLM.from_pretrained(
        str(model_path), quantization_config=quant, dtype=dtype, device_map=device_map,
        trust_remote_code=recipe.trust_remote_code,
    )
    if device == "cpu" and recipe.load_in_4bit:
        keep_cpu_4bit_training_layout(model)
    return model, tokenizer


def keep_cpu_4bit_training_layout(model: Any) -> None:
    """Stop bitsandbytes from repacking 4-bit weights for CPU inference.

    bitsandbytes 0.50 (on CPUs with AVX512-BF16) repacks a Linear4bit's weights into an
    inference layout the first time it runs in eval mode without gradients, and never packs
    them back when training resumes: after a greedy evaluation mid-run, training went on with
    wrong activations (demo loss 2.4 instead of 0.96, answers that ignored the prompt). Greedy
    evaluation and training share one model here, so the repacking is switched off.
    """
    import bitsandbytes as bnb

    for module in model.modules():
        if isinstance(module, bnb.nn.Linear4bit):
            module.support_avx512bf16_for_cpu = False


def add_lora(model: Any, recipe: Recipe) -> Any:
    """Fresh LoRA adapters on the recipe's target modules (seeded), ready to train."""
    import torch
    from peft import get_peft_model, prepare_model_for_kbit_training

    if recipe.load_in_4bit:
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=recipe.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False},
        )
    elif recipe.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    torch.manual_seed(recipe.seed)  # LoRA A matrices are drawn here: same seed, same adapter
    return get_peft_model(model, lora_config(recipe))


def enable_gradient_checkpointing(model: Any) -> None:
    """Turn recompute on in a model already loaded (recipes/oom.py backs off to it)."""
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.enable_input_require_grads()


def load(model_path: str | Path, recipe: Recipe, device: str) -> tuple[Any, Any]:
    model, tokenizer = load_base(model_path, recipe, device)
    return add_lora(model, recipe), tokenizer
