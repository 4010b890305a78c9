"""Headless front end: renders the event stream with Rich (progress bar, ETA, loss, lr, memory).

It only consumes events (recipes/events.py), exactly as the TUI does, so what a person sees in
a terminal and what the TUI shows come from the same stream.

Everything an event carries (a sample's prompt and output, an error, a path) is printed as
plain text, never as Rich markup ("[INST]" is a prompt, not a style), with its control
characters shown as escapes (``recipes.safe_text``): a model's output cannot drive the terminal.
"""

from __future__ import annotations

from rich.console import Console, Group
from rich.live import Live
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table
from rich.text import Text

from recipes import events as ev
from recipes.safe_text import safe_text


def _safe(value: object, style: str = "", multiline: bool = True) -> Text:
    return Text(safe_text(value, multiline=multiline), style=style)


def _line(*parts: str | tuple[str, str] | Text) -> Text:
    """A line from fixed words (str or (str, style)) and event values (already ``_safe``)."""
    return Text.assemble(*parts)


def _fmt_memory(mem: ev.Memory | None) -> str:
    if mem is None:
        return ""
    label = "VRAM" if mem.kind == "vram" else "RAM"
    return f"{label} {mem.now_mb / 1024:.2f}G (peak {mem.peak_mb / 1024:.2f}/{mem.total_mb / 1024:.0f}G)"


class RichRenderer:
    """Call it with each event; it draws a live progress bar and prints the milestones."""

    def __init__(self, console: Console | None = None) -> None:
        self.console = console or Console()
        # Two lines, so an 80-column terminal shows everything: the bar, then the figures.
        self.progress = Progress(
            TextColumn("[bold]train[/]"), BarColumn(bar_width=None), MofNCompleteColumn(),
            TextColumn("eta"), TimeRemainingColumn(), TextColumn("elapsed"), TimeElapsedColumn(),
            console=self.console, expand=True,
        )
        self.status = Text("")
        self.live = Live(Group(self.progress, self.status), console=self.console,
                         refresh_per_second=4, transient=False)
        self.task: int | None = None

    def __call__(self, event: ev.Event) -> None:
        handler = getattr(self, f"on_{event.type}", None)
        if handler is not None:
            handler(event)

    def _print(self, *args: object) -> None:
        # While the live display runs, print above it so the bar stays at the bottom.
        (self.live.console if self.live.is_started else self.console).print(*args)

    def on_run_started(self, e: ev.RunStarted) -> None:
        verb = f"resuming from step {e.resumed_from_step}" if e.resumed_from_step else "starting"
        self._print(_line(("slothlab", "bold"), f" {verb} ", _safe(e.recipe, "cyan", False),
                          " (tiny mode)" if e.tiny else ""))
        self._print(_line("  run dir  ", _safe(e.run_dir)))
        self._print(_line("  backend  ", _safe(e.backend_reason)))
        self._print(_line("  device   ", _safe(e.device),
                          f" × {e.world_size} processes" if e.world_size > 1 else ""))

    def on_preflight(self, e: ev.Preflight) -> None:
        table = Table(title="preflight", show_header=False, box=None, padding=(0, 2))
        table.add_row("examples", _safe(", ".join(f"{k} {v}" for k, v in e.splits.items())))
        table.add_row("tokens / example", f"min {e.tokens_min} · median {e.tokens_median:g} · max {e.tokens_max}")
        table.add_row("trained tokens", f"{e.trained_token_share:.1%} (responses only)")
        table.add_row("truncated", f"{e.truncated} at max_seq_length={e.max_seq_length}")
        table.add_row("steps", str(e.total_steps))
        for stage, shares in e.task_shares.items():
            table.add_row(_safe(f"task tokens {stage}", multiline=False),
                          _safe(" · ".join(f"{task} {share:.0%}" for task, share in shares.items())))
        for name, value in e.settings.items():
            table.add_row(name, _safe(value, multiline=False))
        for change in e.changes:
            table.add_row(Text("changed", style="yellow"), _safe(change))
        for note in e.notes:
            table.add_row("note", _safe(note))
        self._print(table)
        self._start(e.total_steps)

    def _start(self, total: int) -> None:
        if self.task is None:
            self.task = self.progress.add_task("train", total=total)
            self.live.start()

    def on_step(self, e: ev.Step) -> None:
        self._start(e.total_steps)
        grad = f" · grad {e.grad_norm:.2f}" if e.grad_norm is not None else ""
        loss = "not finite" if e.loss is None else f"{e.loss:.4f}"
        self.status.plain = (f"loss {loss} · lr {e.learning_rate:.1e}{grad} · "
                             f"{e.tokens_per_second:,.0f} tok/s · {_fmt_memory(e.memory)}")
        self.progress.update(self.task, completed=e.step, total=e.total_steps)

    def on_eval(self, e: ev.Eval) -> None:
        if e.loss is not None:
            ppl = f" · perplexity {e.perplexity:.2f}" if e.perplexity is not None else ""
            self._print(f"  eval @ step {e.step}: loss {e.loss:.4f}{ppl}")
        for sample in e.samples:
            # One line each: the prompt's end and the output's start, newlines shown as \n.
            self._print(_line(("    prompt ", "dim"), _safe(sample.prompt[-80:], multiline=False)))
            self._print(_line(("    output ", "green"),
                              _safe(sample.output[:120], multiline=False)))

    def on_checkpoint(self, e: ev.Checkpoint) -> None:
        self._print(_line((f"  checkpoint @ step {e.step}: ", "dim"), _safe(e.path, "dim")))

    def on_metrics(self, e: ev.Metrics) -> None:
        values = " · ".join(f"{k} {v:.4f}" for k, v in e.values.items())
        self._print(_line("  ", _safe(f"{e.stage}: {values}")))

    def on_oom(self, e: ev.Oom) -> None:
        phase = "training" if e.phase == "train" else "evaluation"
        self._print(_line(("  out of memory", "bold yellow"), f" at step {e.step} ({phase}): ",
                          _safe(e.message)))

    def _stop_progress(self) -> None:
        if self.live.is_started:
            self.live.stop()
            self.console.line()

    def on_finished(self, e: ev.Finished) -> None:
        self._stop_progress()
        loss = f"{e.final_loss:.4f}" if e.final_loss is not None else "n/a"
        self._print(_line(("finished", "bold green"),
                          f" {e.step} steps in {e.seconds:.0f} s · final loss {loss}"))
        self._print(_line("  adapter  ", _safe(e.adapter_dir)))

    def on_stopped(self, e: ev.Stopped) -> None:
        self._stop_progress()
        if e.checkpoint is None:
            self._print(_line(("stopped", "bold yellow"),
                              " before the first training step: nothing to resume"))
            self._print(_line("  start it again with: ", _safe(e.resume_command)))
            return
        self._print(_line(("stopped", "bold yellow"), f" at step {e.step}; checkpoint ",
                          _safe(e.checkpoint)))
        self._print(_line("  resume with: ", _safe(e.resume_command)))

    def on_failed(self, e: ev.Failed) -> None:
        self._stop_progress()
        self._print(_line(("failed", "bold red"), " ", _safe(e.error)))
        if e.advice:
            self._print(_line("  → ", _safe(e.advice)))
