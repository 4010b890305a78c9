"""Headless experiment view: a Rich table, one row per variant, filled in as the variants run.

It consumes the same events ``slothlab experiment --json`` prints: the experiment's own
(experiment_started, variant_ended, experiment_ended) and its runs' events, each tagged with
its variant. The running variant's row shows its step and losses live; a finished variant's row
is the table row the experiment wrote (experiment.json).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from recipes import events as ev
from recipes.numbers import change as format_change
from recipes.numbers import metric_value, relative

STATUS_STYLE = {"finished": "green", "running": "cyan", "stopped": "yellow", "failed": "red",
                "pending": "dim", "interrupted": "yellow", "starting": "cyan"}


def seconds(value: float | None) -> str:
    if value is None:
        return "–"
    value = round(value)
    minutes, secs = divmod(value, 60)
    return f"{minutes}m {secs:02d}s" if minutes else f"{secs}s"


def changes(row: dict[str, Any]) -> str:
    def show(value: Any) -> str:
        if isinstance(value, bool):
            return str(value).lower()
        return f"{value:g}" if isinstance(value, float) else str(value)

    parts = [f"{k}={show(v)}" for k, v in (row.get("effective") or row.get("overrides") or {})
             .items() if k != "tiny_overrides"]
    return " ".join(parts) or "(base recipe)"


COLUMNS = ("variant", "changes", "status", "steps", "train loss", "val loss", "{metric}",
           "change", "time", "peak mem")


def row_cells(row: dict[str, Any], metric: str, lower_is_better: bool = False) -> list[Text]:
    """One variant's cells, in COLUMNS order (the Rich table and the TUI's share them)."""
    m = (row.get("metrics") or {}).get(metric) or {}
    change = m.get("change")
    better = change is not None and (change < 0 if lower_is_better else change > 0)
    moved = "" if m.get("relative") is None else f" {relative(m['relative'])}"
    status = row.get("status", "pending")
    total = row.get("total_steps")
    steps = str(row.get("steps") or 0) if status == "finished" else \
        f"{row.get('steps') or 0}/{total or '?'}"
    memory = row.get("peak_memory_mb")
    right = {"justify": "right"}
    return [
        Text(("★ " if row.get("best") else "") + row["variant"],
             style="bold" if row.get("best") else ""),
        Text(changes(row)), Text(status, style=STATUS_STYLE.get(status, "")),
        Text(steps, **right), Text(metric_value(row.get("train_loss")), **right),
        Text(metric_value(row.get("val_loss")), **right),
        Text(metric_value(m.get("finetuned"), metric), **right),
        Text("–" if change is None else f"{format_change(change)}{moved}",
             style="green" if better else "red" if change else "", **right),
        Text(seconds(row.get("wall_seconds")), **right),
        Text("–" if memory is None else f"{memory / 1024:.2f}G", **right)]


def variants_table(rows: list[dict[str, Any]], metric: str, label: str, title: str = "",
                   lower_is_better: bool = False) -> Table:
    """The comparison table; ★ marks the best variant by ``metric``."""
    table = Table(title=title or None, title_justify="left")
    for col in COLUMNS:
        table.add_column(col.format(metric=label), overflow="fold")
    for row in rows:
        table.add_row(*row_cells(row, metric, lower_is_better))
    return table


class ExperimentRenderer:
    """Call it with each event; it keeps a live table and prints the milestones above it."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        self.rows: dict[str, dict[str, Any]] = {}
        self.metric, self.label, self.lower = "eval_loss", "eval loss", False
        self.title = ""
        self.live = Live(Text(""), console=self.console, refresh_per_second=4,
                         transient=False)

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"on_{event.type}", None)
        if handler is not None:
            handler(event)
        if self.live.is_started:
            self.live.update(self._render())

    def _render(self) -> Table:
        return variants_table(list(self.rows.values()), self.metric, self.label, self.title,
                              self.lower)

    def _print(self, *args: Any) -> None:
        (self.live.console if self.live.is_started else self.console).print(*args)

    def _row(self, event: ev.Event) -> dict[str, Any] | None:
        return self.rows.get(event.variant) if event.variant else None

    def on_experiment_started(self, e: ev.ExperimentStarted) -> None:
        self.metric = e.primary_metric
        self.label = e.primary_metric
        self.title = f"{e.experiment}{' (tiny mode)' if e.tiny else ''}"
        self.rows = {v["name"]: {"variant": v["name"], "overrides": v["overrides"],
                                 "status": v["status"]} for v in e.variants}
        self._print(f"[bold]slothlab experiment[/] [cyan]{e.experiment}[/]"
                    f"{' (tiny mode)' if e.tiny else ''}: {len(e.variants)} variants, one after "
                    f"another; primary metric {e.primary_metric}")
        self._print(f"  folder   {e.experiment_dir}")
        self._print(f"  command  {e.command}")
        self.live.update(self._render())
        self.live.start()

    def on_run_started(self, e: ev.RunStarted) -> None:
        row = self._row(e)
        if row is None:
            return
        row["status"] = "running"
        verb = f"resumed from step {e.resumed_from_step}" if e.resumed_from_step else "started"
        self._print(f"[bold]▶ {e.variant}[/] {verb} · {e.run_dir} · {e.backend}")

    def on_preflight(self, e: ev.Preflight) -> None:
        row = self._row(e)
        if row is not None:
            row["total_steps"] = e.total_steps
            for note in e.notes:
                if note.startswith(("misalign_labels", "WARNING")):
                    self._print(f"  [yellow]note[/] {note}")

    def on_step(self, e: ev.Step) -> None:
        row = self._row(e)
        if row is not None:
            row.update(steps=e.step, total_steps=e.total_steps, train_loss=e.loss)
            if e.memory is not None:  # as experiment.json counts it (recipes/experiment_report)
                now = e.memory.now_mb if e.memory.kind == "rss" else e.memory.peak_mb
                row["peak_memory_mb"] = max(row.get("peak_memory_mb") or 0.0, now)

    def on_eval(self, e: ev.Eval) -> None:
        row = self._row(e)
        if row is not None and e.loss is not None:
            row["val_loss"] = e.loss

    def on_stopped(self, e: ev.Stopped) -> None:
        if e.variant:
            where = f"checkpoint {e.checkpoint}" if e.checkpoint else "no checkpoint yet"
            self._print(f"[yellow]■ {e.variant}[/] stopped at step {e.step} ({where})")

    def on_failed(self, e: ev.Failed) -> None:
        if e.variant:
            self._print(f"[red]✗ {e.variant} failed[/] {e.error}")
            if e.advice:
                self._print(f"  → {e.advice}")

    def on_variant_ended(self, e: ev.VariantEnded) -> None:
        if e.row:
            self.rows[e.variant] = e.row
        best = set(e.best.split(", ")) if e.best else set()
        for name, row in self.rows.items():  # the best mark moves as variants finish
            row["best"] = name in best
        if e.skipped:
            self._print(f"[dim]✓ {e.variant} finished earlier: skipped[/]")
        elif e.status == "finished":
            self._print(f"[green]✓ {e.variant}[/] finished in {seconds(e.row.get('wall_seconds'))}")

    def on_experiment_ended(self, e: ev.ExperimentEnded) -> None:
        if self.live.is_started:
            self.live.update(self._render())
            self.live.stop()
            self.console.line()
        style = {"finished": "bold green", "stopped": "bold yellow"}.get(e.status, "bold red")
        finished = sum(row.get("status") == "finished" for row in self.rows.values())
        verdict = (f" · best: [bold]{e.best}[/] by {self.metric}" if e.best else
                   f" · no variant is ahead by {self.metric}" if finished > 1 else "")
        self._print(f"[{style}]experiment {e.status}[/]{verdict}")
        self._print(f"  table    {e.report}")
        if e.resume_command:
            self._print(f"  continue with: {e.resume_command}")
