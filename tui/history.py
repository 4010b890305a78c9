"""Past runs under runs/: one summary per run directory, read from its events.jsonl."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.errors import RunDirError
from recipes.rundir import check_run_dir
from tui.runstate import RunState


@dataclass
class RunSummary:
    path: Path
    state: RunState

    @property
    def name(self) -> str:
        return self.path.name

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


def scan_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory, newest first; folders that are not runs are skipped."""
    if not runs_dir.is_dir():
        return []
    found = []
    for path in sorted(runs_dir.iterdir(), key=lambda p: p.name, reverse=True):
        try:
            check_run_dir(path)
        except RunDirError:
            continue
        found.append(RunSummary(path, RunState.from_run_dir(path)))
    return found
