"""Disk space: what a checkpoint needs, a warning before training, and a full disk in words.

    need = checkpoint_bytes(model, optimizer)      # weights saved + optimizer state + a margin
    disk_note(run_dir, need, keep=3)               # a preflight note when space is short
    disk_full(exc)                                 # True for ENOSPC however the library says it
"""

from __future__ import annotations

import errno
import shutil
from pathlib import Path
from typing import Any

MB = 2**20
MARGIN = 4 * MB  # trainer state, scheduler, RNG state, tokenizer files


def checkpoint_bytes(model: Any, optimizer: Any) -> int:
    """Bytes one checkpoint takes: the trainable weights as saved (their own dtype) plus the
    optimizer's state (8-bit Adam: two bytes per parameter and its block scales; 32-bit Adam:
    eight; SGD with momentum: four)."""
    trainable = [p for p in model.parameters() if p.requires_grad]
    weights = sum(p.numel() * p.element_size() for p in trainable)
    count = sum(p.numel() for p in trainable)
    inner = getattr(optimizer, "optimizer", optimizer)
    bits = getattr(getattr(inner, "args", None), "optim_bits", None)
    name = type(inner).__name__.lower()
    per_param = 2.1 if bits == 8 else 4 if "sgd" in name else 8
    return int(weights + count * per_param + MARGIN)


def free_bytes(path: Path) -> int:
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def disk_note(folder: Path, need: int, keep: int) -> list[str]:
    """A preflight warning when ``folder``'s disk cannot hold the checkpoints the run keeps."""
    free = free_bytes(folder)
    wanted = need * (keep or 3) + need  # the kept checkpoints, and the adapter at the end
    if free >= wanted:
        return []
    return [f"WARNING: {free / MB:,.0f} MB free at {folder}; a checkpoint needs about "
            f"{need / MB:,.1f} MB and save_total_limit keeps {keep or 'every one of them'}: free "
            f"some space or lower save_total_limit"]


def disk_full(exc: BaseException) -> bool:
    """ENOSPC, as Python raises it or as torch's and safetensors' writers word it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        text = str(exc).lower()
        if "no space left" in text or "unexpected pos" in text or "file write failed" in text:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
