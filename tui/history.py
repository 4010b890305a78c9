"""Past runs under runs/: one summary per run directory, read from its events.jsonl.

A run's display name and note live beside its events, in ``notes.json`` (``{"name", "note"}``):
renaming never moves the folder, so the paths its events, checkpoints and resume command hold
stay right. ``scan_runs`` keeps what it read of each run and re-reads only the runs whose
events.jsonl or notes.json changed since (History refreshes running runs every few seconds).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from recipes.errors import RunDirError
from recipes.rundir import EVENTS_FILE, check_run_dir
from tui.runstate import RunState

NOTES_FILE = "notes.json"


@dataclass
class RunSummary:
    path: Path
    state: RunState
    notes: dict[str, str] = field(default_factory=dict)

    @property
    def name(self) -> str:
        """The folder's name: the run's id (keys, paths)."""
        return self.path.name

    @property
    def label(self) -> str:
        """What a person calls it: the name given with n, else the folder's name."""
        return self.notes.get("name") or self.path.name

    @property
    def note(self) -> str:
        return self.notes.get("note", "")

    @property
    def recipe(self) -> str:
        return self.state.started.recipe if self.state.started else "?"

    @property
    def tiny(self) -> bool:
        return bool(self.state.started and self.state.started.tiny)

    @property
    def final_loss(self) -> float | None:
        return self.state.train_loss.last

    @property
    def eval_loss(self) -> float | None:
        return self.state.eval_loss.last


def read_notes(run_dir: Path) -> dict[str, str]:
    try:
        data = json.loads((run_dir / NOTES_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict):
        return {}
    return {k: str(v) for k, v in data.items() if k in ("name", "note") and v}


def write_notes(run_dir: Path, **changes: str) -> dict[str, str]:
    """Set (or, with "", clear) the run's display name and note; written atomically."""
    notes = {**read_notes(run_dir), **changes}
    notes = {k: v for k, v in notes.items() if v}
    tmp = run_dir / f".{NOTES_FILE}.tmp"
    tmp.write_text(json.dumps(notes, ensure_ascii=False, indent=1), encoding="utf-8")
    os.replace(tmp, run_dir / NOTES_FILE)
    return notes


def delete_run(run: RunSummary) -> None:
    """Remove a run's folder. Refuses a run that is still going (its process alive) or a
    folder that is not a run (``check_run_dir``)."""
    if RunState.from_run_dir(run.path).status in ("starting", "running", "stopping"):
        raise RunDirError("this run is still running", where=str(run.path),
                          fix="stop it first (open it and press s)")
    check_run_dir(run.path)
    shutil.rmtree(run.path)


def _stamp(path: Path) -> tuple:
    stamps = []
    for name in (EVENTS_FILE, NOTES_FILE):
        try:
            st = (path / name).stat()
            stamps.append((st.st_size, st.st_mtime_ns))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


_CACHE: dict[Path, tuple[tuple, RunSummary]] = {}


def scan_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory, newest first; folders that are not runs are skipped. A run whose
    files have not changed since the last scan is not read again."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        try:
            check_run_dir(path)
        except RunDirError:
            continue
        stamp = _stamp(path)
        cached = _CACHE.get(path.resolve())
        # A run still going can change status without a new event (its process ended).
        if cached is not None and cached[0] == stamp and cached[1].state.terminal:
            found.append(cached[1])
            continue
        summary = RunSummary(path, RunState.from_run_dir(path), read_notes(path))
        _CACHE[path.resolve()] = (stamp, summary)
        found.append(summary)
    return found
