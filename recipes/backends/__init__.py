"""Backends load a base model and return (PEFT model, tokenizer); everything after is shared.

    from recipes.backends import select_backend
    choice = select_backend("auto")     # BackendChoice(name="reference", reason="no CUDA device: ...")

``select_backend`` runs in the training process before transformers, trl or peft are imported,
because Unsloth must patch them first when it is chosen. It never runs in the TUI process.
"""

from __future__ import annotations

import importlib.util
import os
import types
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.distributed import launched, world_size
from recipes.errors import BackendError, SlothlabError
from recipes.schema import Recipe

BACKENDS = ("auto", "unsloth", "reference")
REFERENCE_DESC = "reference backend (transformers + bitsandbytes + peft)"


@dataclass(frozen=True)
class BackendChoice:
    name: str  # "unsloth" | "reference"
    reason: str


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def _try_import_unsloth() -> str | None:
    """None if ``import unsloth`` works here, else the reason it does not."""
    if importlib.util.find_spec("unsloth") is None:
        return "unsloth is not installed"
    try:
        import unsloth  # noqa: F401  (imported first on purpose: it patches transformers/peft/trl)
    except Exception as exc:  # bad installs; on a CPU with UNSLOTH_DISABLE_CPU_FALLBACK=1
        return f"import unsloth failed: {type(exc).__name__}: {str(exc).splitlines()[0][:160]}"
    return None


UNSLOTH_CPU_DESC = ("no CUDA: Unsloth's CPU backend (stock transformers/peft/TRL with "
                    "bitsandbytes 4-bit, no fused kernels)")
UNSLOTH_VERSION = "2026.10.9"


def select_backend(requested: str, *, cuda: bool | None = None,
                   unsloth_problem: str | None | type[Ellipsis] = ...) -> BackendChoice:
    """Pick the backend and say why. ``cuda``/``unsloth_problem`` are injectable for tests.

    ``auto`` takes unsloth only on a CUDA GPU: on a CPU its import would patch TRL and
    transformers for the whole process (8-bit optimizers become adamw_torch_fused) for no speed
    (no fused kernels), so the reference backend runs. ``unsloth`` asked for on a CPU runs
    Unsloth's own CPU backend.
    """
    if requested not in BACKENDS:
        raise BackendError(f"unknown backend '{requested}'", where="--backend",
                           fix=f"use one of {', '.join(BACKENDS)}")
    if requested == "reference":
        return BackendChoice("reference", f"requested: {REFERENCE_DESC}")
    if launched():
        if os.environ.get("ACCELERATE_USE_FSDP", "").lower() == "true":
            raise BackendError(
                "FSDP is not supported: slothlab trains QLoRA with DDP (every GPU holds the "
                "4-bit model)", where="accelerate launch --use_fsdp",
                fix="launch DDP: accelerate launch --multi_gpu --num_processes N -m tui.cli ..., "
                    "or torchrun --nproc_per_node N -m tui.cli ...")
        if requested == "unsloth":
            raise BackendError(
                f"the unsloth backend is single-GPU; this launch has {world_size()} processes",
                where="--backend",
                fix="use --backend reference (the multi-GPU path: DDP under torchrun / "
                    "accelerate launch), or run one process: slothlab --backend unsloth ...")
        return BackendChoice("reference", f"{world_size()} processes (torchrun / accelerate "
                                          f"launch): {REFERENCE_DESC}, DDP (Unsloth is "
                                          "single-GPU)")
    has_cuda = _cuda_available() if cuda is None else cuda
    if not has_cuda and requested == "auto":
        return BackendChoice("reference", f"no CUDA device: {REFERENCE_DESC} (--backend "
                                          "unsloth runs Unsloth's CPU backend)")
    problem = _try_import_unsloth() if unsloth_problem is ... else unsloth_problem
    if problem is None:
        if not has_cuda:
            return BackendChoice("unsloth", f"requested, {UNSLOTH_CPU_DESC}")
        return BackendChoice("unsloth", "CUDA device and unsloth importable: unsloth backend "
                                        "(fused 4-bit LoRA kernels)")
    if requested == "unsloth":
        raise BackendError(f"--backend unsloth cannot run: {problem}", where="--backend",
                           fix=f"pip install 'unsloth=={UNSLOTH_VERSION}' in this environment "
                               "(on a CPU, UNSLOTH_DISABLE_CPU_FALLBACK must be unset), or use "
                               "--backend reference")
    return BackendChoice("reference", f"CUDA device but {problem}: {REFERENCE_DESC}")


def backend_module(name: str) -> types.ModuleType:
    """The module of a chosen backend (imported only now: unsloth's must follow select_backend)."""
    if name == "unsloth":
        from recipes.backends import unsloth as module
    else:
        from recipes.backends import reference as module  # type: ignore[no-redef]
    return module


def load_model(backend: types.ModuleType, model_path: str | Path, recipe: Recipe,
               device: str) -> tuple[Any, Any]:
    """(PEFT model, tokenizer) through ``backend``; a model that cannot be loaded is a clear error."""
    from recipes.models import CHAT_TEMPLATES

    try:
        model, tokenizer = backend.load(model_path, recipe, device)
    except OSError as exc:
        raise SlothlabError(
            f"could not load model '{model_path}' ({str(exc).splitlines()[0][:200]})",
            where="model",
            fix="check the hub id / your network and HF token, or run offline with --tiny, or "
                "--set model=/path/to/local/model",
        ) from None
    if recipe.chat_template != "auto":
        tokenizer.chat_template = CHAT_TEMPLATES[recipe.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer
