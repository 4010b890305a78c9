"""The run directory: one layout, written by the training run and read by every front end.

    runs/<YYYYmmdd-HHMMSS>-<recipe>/
        recipe.yaml       the resolved recipe (every field, overrides applied)
        events.jsonl      the event stream (recipes/events.py)
        checkpoints/      checkpoint-<step>/ from the trainer (resumable once it holds
                          slothlab-complete.json, written after everything else)
        broken-checkpoints/  torn or corrupt checkpoints a resume set aside (never deleted)
        adapter/          the final PEFT adapter (safetensors) + tokenizer
        base/             tiny mode only: the miniature base model the adapter belongs to
        stages/           staged recipes only: one folder per stage, each resumable
        done.json         the stage's summary, written last (a single-stage run's is here)
"""

from __future__ import annotations

import json
import re
import time
import zipfile
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
COMPLETE = "slothlab-complete.json"  # in a checkpoint folder, written after everything else
BROKEN = "broken-checkpoints"  # torn or corrupt checkpoints, moved aside on resume
WEIGHT_FILES = ("adapter_model.safetensors", "model.safetensors")
STATE_FILES = ("trainer_state.json", "optimizer.pt", "scheduler.pt", "rng_state.pth")


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
    """Every checkpoint-<step> folder of a stage folder, oldest first (whole or not)."""
    found = [p for p in (run_dir / CHECKPOINTS).glob("checkpoint-*")
             if p.is_dir() and p.name.rsplit("-", 1)[1].isdigit()]
    return sorted(found, key=lambda p: int(p.name.rsplit("-", 1)[1]))


def mark_complete(checkpoint: Path) -> None:
    """Written after the trainer saved everything: the checkpoint counts only with this file."""
    files = {p.name: p.stat().st_size for p in sorted(checkpoint.iterdir())
             if p.is_file() and p.name != COMPLETE}
    write_json(checkpoint / COMPLETE, {"step": int(checkpoint.name.rsplit("-", 1)[1]),
                                       "files": files})


def checkpoint_problem(checkpoint: Path, *, deep: bool = False) -> str | None:
    """None if ``checkpoint`` is whole, else what is wrong with it.

    Light (no torch; what the TUI asks): the completion marker is there and every file it
    lists has its recorded size. ``deep`` (before a resume) also opens the weights' safetensors
    header, the trainer state and the optimizer / scheduler / RNG state (``weights_only``).
    A checkpoint written before markers existed is judged by its files alone.
    """
    try:
        marker = json.loads((checkpoint / COMPLETE).read_text(encoding="utf-8"))
    except FileNotFoundError:
        marker = None
    except (OSError, ValueError):
        return f"its completion marker {COMPLETE} is unreadable"
    if marker is not None:
        for name, size in marker.get("files", {}).items():
            path = checkpoint / name
            if not path.is_file():
                return f"{name} is missing"
            if path.stat().st_size != size:
                return f"{name} is {path.stat().st_size} bytes, {size} were written"
    else:
        siblings = checkpoint.parent.glob(f"checkpoint-*/{COMPLETE}")
        if any(siblings):
            return "it was never finished (no completion marker: the save was interrupted)"
    weights = [n for n in WEIGHT_FILES if (checkpoint / n).is_file()]
    missing = [n for n in STATE_FILES if not (checkpoint / n).is_file()
               and not (n == "rng_state.pth" and rng_files(checkpoint))]
    if not weights or missing:
        return f"{', '.join(missing or ['the weights'])} missing"
    if deep:
        return _deep_problem(checkpoint, weights[0])
    return None


def _deep_problem(checkpoint: Path, weights: str) -> str | None:
    import torch
    from safetensors import safe_open

    try:
        json.loads((checkpoint / "trainer_state.json").read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        return f"trainer_state.json is unreadable ({type(exc).__name__})"
    try:
        with safe_open(str(checkpoint / weights), "pt") as handle:
            list(handle.keys())
    except Exception as exc:  # safetensors raises its own error types for a torn header
        return f"{weights} is unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    for name in ("optimizer.pt", "scheduler.pt"):
        try:
            torch.load(checkpoint / name, map_location="cpu", weights_only=True, mmap=True)
        except Exception as exc:
            return f"{name} is unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    for rng in rng_files(checkpoint):  # NumPy's RNG state is not weights_only-loadable:
        try:                           # check the archive's every CRC
            with zipfile.ZipFile(rng) as archive:
                if archive.testzip() is not None:
                    return f"{rng.name} is corrupt"
        except (OSError, zipfile.BadZipFile) as exc:
            return f"{rng.name} is unreadable ({type(exc).__name__})"
    return None


def rng_files(checkpoint: Path) -> list[Path]:
    """rng_state.pth, or under torchrun one rng_state_<rank>.pth per process."""
    one = checkpoint / "rng_state.pth"
    return [one] if one.is_file() else sorted(checkpoint.glob("rng_state_*.pth"))


def latest_checkpoint(run_dir: Path, *, deep: bool = False) -> Path | None:
    """The newest whole checkpoint of a stage folder (torn or corrupt ones are passed over)."""
    return next((c for c in reversed(checkpoints(run_dir))
                 if checkpoint_problem(c, deep=deep) is None), None)


def set_aside_broken(run_dir: Path) -> list[str]:
    """Move every torn or corrupt checkpoint of a stage folder to broken-checkpoints/ (never
    deleted, and out of reach of the trainer's rotation); one line per checkpoint moved."""
    moved = []
    for checkpoint in checkpoints(run_dir):
        problem = checkpoint_problem(checkpoint, deep=True)
        if problem is None:
            continue
        target = run_dir / BROKEN / f"{checkpoint.name}.broken"
        target.parent.mkdir(exist_ok=True)
        n = 1
        while target.exists():
            n += 1
            target = target.with_name(f"{checkpoint.name}.broken-{n}")
        checkpoint.rename(target)
        (target / "WHY.txt").write_text(problem + "\n", encoding="utf-8")
        moved.append(f"{checkpoint.name} set aside as {target} ({problem})")
    return moved


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


def resume_point(run_dir: Path, stages: list[str]) -> tuple[str, Path | None] | None:
    """(the stage a --resume continues, its newest whole checkpoint or None to start the stage
    afresh) for a run of ``stages`` (empty: an ordinary one-stage recipe); None when every
    stage is done. A light check (no torch): what the TUI shows before resuming."""
    for stage in stages or ["finetune"]:
        folder = stage_folder(run_dir, stage, staged=bool(stages))
        if read_done(folder) is None:
            return stage, latest_checkpoint(folder)
    return None


def recipe_stages(run_dir: Path) -> list[str]:
    """The stages a run's recipe.yaml lists (empty for an ordinary recipe), read without the schema."""
    import yaml

    try:
        data = yaml.safe_load((run_dir / RECIPE_FILE).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError):
        return []
    stages = data.get("stages") if isinstance(data, dict) else None
    return [str(s) for s in stages] if isinstance(stages, list) else []
