"""Unsloth backend: FastLanguageModel 4-bit + get_peft_model with Unsloth's fused LoRA kernels.

Imported only in the training process, after ``select_backend`` chose it (so ``unsloth`` was
imported before transformers, trl and peft). All contact with Unsloth's API lives here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recipes.schema import Recipe


def load(model_path: str | Path, recipe: Recipe, device: str) -> tuple[Any, Any]:
    from unsloth import FastLanguageModel

    from recipes.backends.reference import resolve_dtype

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=str(model_path),
        max_seq_length=recipe.max_seq_length,
        dtype=None if recipe.compute_dtype == "auto" else resolve_dtype(recipe.compute_dtype, device),
        load_in_4bit=recipe.load_in_4bit,
        trust_remote_code=recipe.trust_remote_code,
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
        use_gradient_checkpointing="unsloth" if recipe.gradient_checkpointing else False,
        random_state=recipe.seed,
    )
    return model, tokenizer


def for_inference(model: Any) -> None:
    from unsloth import FastLanguageModel

    FastLanguageModel.for_inference(model)


def for_training(model: Any) -> None:
    from unsloth import FastLanguageModel

    FastLanguageModel.for_training(model)
