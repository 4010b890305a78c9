"""What really runs: settings read from the live model and trainer, and where they differ from
the recipe.

Libraries change settings behind a recipe's back (Unsloth's import rewrites 8-bit optimizers,
its CPU backend picks a dtype by host and may fall back from 4-bit, TRL casts QLoRA adapters to
bf16). The preflight event, the headless header, the TUI and report.md show these values, never
the recipe's.
"""

from __future__ import annotations

from typing import Any

from recipes.schema import Recipe


def optimizer_name(optimizer: Any) -> str:
    """'bitsandbytes AdamW (8-bit state)', 'torch AdamW (fused)', ... of the optimizer stepping."""
    inner = getattr(optimizer, "optimizer", optimizer)  # accelerate's wrapper
    cls = type(inner)
    name = f"{cls.__module__.split('.')[0]} {cls.__name__}"
    bits = getattr(getattr(inner, "args", None), "optim_bits", None)
    if bits is not None:
        return f"{name} ({bits}-bit state)"
    defaults = getattr(inner, "defaults", {})
    return f"{name} (fused)" if defaults.get("fused") else name


def quantisation(model: Any) -> tuple[str, bool, Any]:
    """(description, 4-bit?, compute dtype of the 4-bit layers) of the model's base weights."""
    layers = [m for m in model.modules() if type(m).__name__ == "Linear4bit"]
    if not layers:
        return "not quantised (16/32-bit weights)", False, None
    weight = layers[0].weight
    kind = str(getattr(weight, "quant_type", "4-bit")).upper()
    state = getattr(weight, "quant_state", None)
    nested = ", double quantisation" if getattr(state, "nested", False) else ""
    return (f"{kind} 4-bit{nested}, {len(layers)} layers", True,
            getattr(layers[0], "compute_dtype", None))


def _dtype(value: Any) -> str:
    return str(value).removeprefix("torch.")


def effective_settings(recipe: Recipe, model: Any, trainer: Any, backend: str, device: str,
                       notes: list[str]) -> tuple[dict[str, str], list[str]]:
    """(setting -> value read from the live objects, changes from what the recipe asked)."""
    changes = list(notes)
    weights, four_bit, compute = quantisation(model)
    if recipe.load_in_4bit and not four_bit:
        changes.append("load_in_4bit: the weights are not 4-bit (the backend fell back to "
                       "16-bit: bitsandbytes' 4-bit kernels do not run here)")
    params = [p for n, p in model.named_parameters() if "lora_" not in n]
    base_dtype = params[0].dtype if params else None
    autocast = "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else ""
    dtype = _dtype(compute or base_dtype) + (f", {autocast} autocast" if autocast else "")
    lora = sorted({_dtype(p.dtype) for n, p in model.named_parameters()
                   if "lora_" in n and p.requires_grad})
    checkpointing = bool(getattr(model, "is_gradient_checkpointing", False))
    if checkpointing != recipe.gradient_checkpointing:
        changes.append(f"gradient_checkpointing: {recipe.gradient_checkpointing} asked, "
                       f"{checkpointing} on the model")
    if backend == "unsloth":
        fused = ("Unsloth's fused kernels (LoRA MLP/QKV, RoPE, RMSNorm, cross-entropy)"
                 if device == "cuda" else "none (Unsloth's CPU backend has no fused kernels)")
    else:
        fused = "none (reference backend)"
    inner = getattr(getattr(model, "base_model", None), "model", model)
    if device == "cuda":
        loss = "TRL's fused LM-head loss" if backend == "reference" else "Unsloth's loss"
    elif (vars(inner).get("_unsloth_cpu_chunked_ce")
          and getattr(type(trainer).compute_loss, "_unsloth_cpu", False)):
        loss = "Unsloth's chunked cross-entropy (CPU)"
    else:
        loss = "the model's cross-entropy (TRL's Triton loss has no CPU driver)"
    mode = ("Unsloth's offloaded recompute" if backend == "unsloth" and device == "cuda"
            else "non-reentrant recompute")
    args = trainer.args
    world = max(1, int(getattr(args, "world_size", 1) or 1))
    processes = f" × {world} processes" if world > 1 else ""
    settings = {
        "backend": backend,
        "batch": (f"{args.per_device_train_batch_size} per device × "
                  f"{args.gradient_accumulation_steps} accumulation{processes} = "
                  f"{args.per_device_train_batch_size * args.gradient_accumulation_steps * world}"
                  " examples per optimizer step"),
        "optimizer": optimizer_name(trainer.optimizer),
        "compute dtype": dtype,
        "weights": weights,
        "LoRA dtype": ", ".join(lora) or "no trainable LoRA weights",
        "gradient checkpointing": f"on ({mode})" if checkpointing else "off",
        "fused kernels": fused,
        "loss": loss,
    }
    return settings, changes
