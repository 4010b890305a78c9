"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path


def slothlab_env(cache: Path) -> dict[str, str]:
    """The environment of a `python -m tui.cli` child: its own miniature cache, unbuffered."""
    return {**os.environ, "SLOTHLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def whole_checkpoint(folder: Path) -> None:
    """Make ``folder`` a checkpoint a resume accepts: the trainer's state files (placeholders
    where missing) and the completion marker written after them."""
    from recipes.rundir import STATE_FILES, mark_complete

    folder.mkdir(parents=True, exist_ok=True)
    for name in STATE_FILES:
        if not (folder / name).exists():
            (folder / name).write_text("{}", encoding="utf-8")
    if not any((folder / n).exists() for n in ("adapter_model.safetensors", "model.safetensors")):
        (folder / "adapter_model.safetensors").write_text("{}", encoding="utf-8")
    mark_complete(folder)
