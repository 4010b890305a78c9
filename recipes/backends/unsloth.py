"""Unsloth backend: FastLanguageModel 4-bit + get_peft_model; Unsloth's fused kernels on a GPU.

Imported only in the training process, after ``select_backend`` chose it (so ``unsloth`` was
imported before transformers, trl and peft). All contact with Unsloth's API lives here.

On a machine without CUDA, ``import unsloth`` selects Unsloth's CPU backend: the same calls
reach ``FastCPUModel`` (stock transformers + peft with bitsandbytes NF4 layers, a chunked
cross-entropy for Llama-family models, no fused kernels). Its ``dtype=None`` would pick bf16 or
fp32 by the host CPU, so the compute dtype is always passed explicitly (recipes.backends.
reference.resolve_dtype: fp32 on every CPU), and both backends compute the same numbers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recipes.backends.reference import resolve_dtype
from recipes.schema import Recipe


def load(model_path: str | Path, recipe: Recipe, device: str) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel

    checkpointing = "unsloth" if recipe.gradient_checkpointing else False
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_path),
        max_seq_length=recipe.max_seq_length,
        dtype=resolve_dtype(recipe.compute_dtype, device),
        load_in_4bit=recipe.load_in_4bit,
        trust_remote_code=recipe.trust_remote_code,
        use_gradient_checkpointing=checkpointing,
    )
    targets: Any = recipe.target_modules
    if targets == ["all-linear"]:
        targets = "all-linear"
    model = FastLanguageModel.get_peft_model(
        model,
        r=recipe.lora_r,
        target_modules=targets,
        lora_alpha=recipe.lora_alpha,
        lora_dropout=recipe.lora_dropout,
        bias="none",
        use_gradient_checkpointing=checkpointing,
        random_state=recipe.seed,
    )
    return model, tokenizer


def enable_gradient_checkpointing(model: Any) -> None:
    """Turn on Unsloth's checkpointing (offloaded on a GPU) in a loaded model (recipes/oom.py)."""
    from unsloth import FastLanguageModel

    FastLanguageModel.for_training(model, use_gradient_checkpointing="unsloth")


def for_inference(model: Any) -> None:
    from unsloth import FastLanguageModel

    FastLanguageModel.for_inference(model)


def for_training(model: Any) -> None:
    from unsloth import FastLanguageModel

    FastLanguageModel.for_training(model)
