"""The run directory: one layout, written by the training run and read by every front end.

    runs/<YYYYmmdd-HHMMSS>-<recipe>/
        recipe.yaml       the resolved recipe (every field, overrides applied)
        events.jsonl      the event stream (recipes/events.py)
        checkpoints/      checkpoint-<step>/ from the trainer (resumable)
        adapter/          the final PEFT adapter (safetensors) + tokenizer
        base/             tiny mode only: the miniature base model the adapter belongs to
        stages/           staged recipes only: one folder per stage, each resumable
"""

from __future__ import annotations

import re
import time
from pathlib import Path

from recipes.errors import RunDirError

RECIPE_FILE = "recipe.yaml"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
BASE = "base"
STAGES_DIR = "stages"  # staged recipes (gemma3-scratch): stages/<stage>/ with their own checkpoints


def new_run_dir(runs_root: Path, recipe_name: str) -> Path:
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", recipe_name).strip("-") or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    path = runs_root / f"{stamp}-{safe}"
    n = 2
    while path.exists():
        path = runs_root / f"{stamp}-{safe}-{n}"
        n += 1
    path.mkdir(parents=True)
    return path


def check_run_dir(path: Path) -> Path:
    """``path`` if it is a slothlab run directory, else a RunDirError saying what is missing."""
    if not path.exists():
        raise RunDirError("run directory not found", where=str(path),
                          fix="pass a folder under runs/ (ls runs/ lists them)")
    if not path.is_dir():
        raise RunDirError("not a directory", where=str(path), fix="pass a run folder under runs/")
    missing = [name for name in (RECIPE_FILE, EVENTS_FILE) if not (path / name).is_file()]
    if missing:
        raise RunDirError(f"not a slothlab run: {' and '.join(missing)} missing", where=str(path),
                          fix="pass a folder created by `slothlab --recipe ...` (runs/<id>)")
    return path


def checkpoints(run_dir: Path) -> list[Path]:
    found = [p for p in (run_dir / CHECKPOINTS).glob("checkpoint-*") if p.is_dir()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = checkpoints(run_dir)
    return found[-1] if found else None
