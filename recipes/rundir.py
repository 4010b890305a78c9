"""The run directory: one layout, written by the training run and read by every front end.

    runs/<YYYYmmdd-HHMMSS>-<recipe>/
        recipe.yaml       the resolved recipe (every field, overrides applied)
        events.jsonl      the event stream (recipes/events.py)
        checkpoints/      checkpoint-<step>/ from the trainer (resumable)
        adapter/          the final PEFT adapter (safetensors) + tokenizer
        base/             tiny mode only: the miniature base model the adapter belongs to
        stages/           staged recipes only: one folder per stage, each resumable
        done.json         the stage's summary, written last (a single-stage run's is here)
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

from recipes.errors import RunDirError

RECIPE_FILE = "recipe.yaml"
EVENTS_FILE = "events.jsonl"
CHECKPOINTS = "checkpoints"
ADAPTER = "adapter"
BASE = "base"
STAGES_DIR = "stages"  # staged recipes (gemma3-scratch): stages/<stage>/ with their own checkpoints
DONE = "done.json"  # a finished stage's summary; written last, so present = the stage is done


def new_run_dir(runs_root: Path, recipe_name: str) -> Path:
    """A fresh ``<runs_root>/<date>-<time>-<recipe>`` folder (``-2``, ``-3``... on a clash)."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", recipe_name).strip("-") or "run"
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for n in range(1, 1000):
        path = runs_root / (f"{stamp}-{safe}" if n == 1 else f"{stamp}-{safe}-{n}")
        try:
            path.mkdir(parents=True)
            return path
        except FileExistsError:
            if not runs_root.is_dir():
                break  # runs_root itself is a file: mkdir reports that as "exists"
            continue  # another run took this name in the same second
        except OSError as exc:
            raise RunDirError(f"cannot create a run directory here ({exc.strerror})",
                              where=str(runs_root),
                              fix="pass --runs-dir a folder you can write to") from None
    raise RunDirError("cannot create a run directory here (it is not a folder)",
                      where=str(runs_root), fix="pass --runs-dir a folder you can write to")


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


def trained_model_paths(run_dir: Path, recipe: Any,
                        checkpoint: Path | None = None) -> tuple[str, Path | None]:
    """(base model, adapter folder) of a run: what chat, export and eval load.

    The base is the miniature copied into the run (tiny mode), the model pretrained by an
    earlier stage of the same run (gemma3-scratch), or the recipe's ``model``. The adapter is
    ``checkpoint`` when given (a stopped run), else ``adapter/`` (None when it is absent).
    """
    stages = getattr(recipe, "stages", []) or []
    if "pretrain" in stages:
        base = str(run_dir / STAGES_DIR / "pretrain" / "model")
    elif getattr(recipe, "tiny", False):
        base = str(run_dir / BASE)
    else:
        base = str(recipe.model)
    if checkpoint is not None:
        return base, checkpoint
    adapter = run_dir / ADAPTER
    return base, adapter if (adapter / "adapter_config.json").is_file() else None


def stage_folder(run_dir: Path, stage: str, *, staged: bool) -> Path:
    """Where a stage writes: the run directory itself for a one-stage recipe, else stages/<stage>."""
    return run_dir / STAGES_DIR / stage if staged else run_dir


def write_json(path: Path, data: Any) -> None:
    """Write via a temporary file renamed into place: the file is complete or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    partial.replace(path)


def read_done(folder: Path) -> dict[str, Any] | None:
    """A stage folder's summary, or None while the stage has not finished."""
    path = folder / DONE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
