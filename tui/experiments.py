"""Experiments under runs/ for the TUI: one summary per experiment folder, and one followed live.

An experiment folder (recipes/experiment_dir.py) holds plan.json, experiment.json (rewritten
after each variant) and one run directory per variant. ``ExperimentView.poll()`` reads what
changed since the last call: the table when its file changed, and each variant's events.jsonl
from where it stopped reading, folded into a RunState, so a running experiment (started here or
in a terminal) is followed live like a run. Nothing here imports torch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.experiment_dir import (
    PLAN,
    REPORT_JSON,
    current_run,
    experiment_status,
    is_experiment,
    load_table,
    read_plan,
)
from recipes.rundir import EVENTS_FILE
from tui.runstate import RunState
from tui.widgets.loss_plot import Curve


@dataclass
class ExperimentSummary:
    path: Path
    plan: dict[str, Any]
    table: dict[str, Any] | None
    status: str

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def recipe(self) -> str:
        return Path(self.plan.get("recipe", "?")).stem

    @property
    def tiny(self) -> bool:
        return bool(self.plan.get("tiny"))

    @property
    def total(self) -> int:
        return len(self.plan.get("variants", []))

    @property
    def finished(self) -> int:
        rows = (self.table or {}).get("rows", [])
        return sum(r.get("status") == "finished" for r in rows)

    @property
    def best(self) -> str:
        return (self.table or {}).get("best") or ""

    def best_value(self) -> tuple[str, float | None]:
        """(primary metric, the best variant's fine-tuned value)."""
        table = self.table or {}
        metric = table.get("primary_metric", "")
        for row in table.get("rows", []):
            if row.get("best"):
                return metric, (row.get("metrics", {}).get(metric) or {}).get("finetuned")
        return metric, None


def scan_experiments(runs_dir: Path) -> list[ExperimentSummary]:
    """Every experiment folder directly under ``runs_dir``, most recently started first."""
    if not runs_dir.is_dir():
        return []
    found = [p for p in runs_dir.iterdir() if p.is_dir() and is_experiment(p)]
    found.sort(key=lambda p: (p / PLAN).stat().st_mtime, reverse=True)
    return [ExperimentSummary(p, read_plan(p), load_table(p), experiment_status(p)[0])
            for p in found]


class VariantFollower:
    """A variant's RunState, extended with the lines its events.jsonl gained since last time."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.state = RunState(run_dir=run_dir, title=run_dir.name)
        self.offset = 0

    def poll(self) -> bool:
        path = self.run_dir / EVENTS_FILE
        try:
            with open(path, "rb") as fh:
                fh.seek(self.offset)
                data = fh.read()
        except OSError:
            return False
        end = data.rfind(b"\n") + 1  # a line still being written waits for the next poll
        if end == 0:
            return False
        self.offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if line.strip():
                try:
                    self.state.apply(ev.parse_event(line))
                except (ValueError, TypeError):
                    continue
        return True


class ExperimentView:
    """One experiment folder as the Experiment screen shows it, refreshed by ``poll()``."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.plan: dict[str, Any] = {}
        self.table: dict[str, Any] = {}
        self.status, self.pid = "pending", 0
        self.followers: dict[str, VariantFollower] = {}
        self._table_mtime = 0.0

    @property
    def variants(self) -> list[dict[str, Any]]:
        return self.plan.get("variants", [])

    def poll(self) -> bool:
        """Read what changed on disk; True when anything did."""
        changed = False
        if not self.plan:
            self.plan = read_plan(self.folder)
            changed = bool(self.plan)
        path = self.folder / REPORT_JSON
        mtime = path.stat().st_mtime if path.is_file() else 0.0
        if mtime != self._table_mtime:
            self.table = load_table(self.folder) or self.table
            self._table_mtime, changed = mtime, True
        status = experiment_status(self.folder)
        if status != (self.status, self.pid):
            (self.status, self.pid), changed = status, True
        for variant in self.variants:
            run_dir = current_run(self.folder, variant["folder"])
            follower = self.followers.get(variant["name"])
            if run_dir is not None and (follower is None or follower.run_dir != run_dir):
                follower = self.followers[variant["name"]] = VariantFollower(run_dir)
            if follower is not None:
                changed = follower.poll() or changed
        return changed

    def rows(self) -> list[dict[str, Any]]:
        """The table's rows; a variant that has not finished shows its run's live figures."""
        written = {r["variant"]: r for r in self.table.get("rows", [])}
        rows = []
        for variant in self.variants:
            row = dict(written.get(variant["name"]) or {
                "variant": variant["name"], "overrides": variant.get("overrides", {}),
                "status": "pending"})
            follower = self.followers.get(variant["name"])
            if follower is not None and row.get("status") != "finished":
                state = follower.state
                row.update(status=state.status, steps=state.current_step,
                           total_steps=state.total_steps or None,
                           train_loss=state.train_loss.last, val_loss=state.eval_loss.last,
                           peak_memory_mb=state.peak_mb or None, wall_seconds=state.elapsed(),
                           run_dir=str(follower.run_dir))
            rows.append(row)
        return rows

    @property
    def metric(self) -> str:
        return self.table.get("primary_metric") or self.plan.get("primary_metric") or ""

    @property
    def lower_is_better(self) -> bool:
        return bool(self.table.get("lower_is_better"))

    def label(self, metric: str) -> str:
        return (self.table.get("labels") or {}).get(metric, metric)

    def curves(self, with_eval: bool) -> list[Curve]:
        """Every variant's train loss (or, with_eval, its eval loss), one curve each."""
        curves = []
        for variant in self.variants:
            follower = self.followers.get(variant["name"])
            if follower is None:
                continue
            series = follower.state.eval_loss if with_eval else follower.state.train_loss
            xs, ys = series.points()
            if xs:
                curves.append(Curve(variant["name"], xs, ys,
                                    marker="dot" if with_eval else "braille"))
        return curves

    def run_dir(self, name: str) -> Path | None:
        follower = self.followers.get(name)
        return follower.run_dir if follower is not None else None
