"""The latest numbers of a run: loss, eval loss, learning rate, grad norm, tokens/s, backend."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from recipes.safe_text import safe_text
from tui import format as fmt
from tui.runstate import RunState

STATUS_STYLE = {
    "starting": "bold cyan", "running": "bold cyan", "stopping": "bold yellow",
    "finished": "bold green", "stopped": "bold yellow", "failed": "bold red",
    "interrupted": "bold red",
}


def render_stats(state: RunState) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True, min_width=5)
    grid.add_column(no_wrap=True, overflow="ellipsis")
    step = state.step
    grid.add_row("loss", Text(fmt.number(step.loss) if step else "–", style="bold"))
    last_eval = state.last_eval
    if last_eval is not None and last_eval.loss is not None:
        ppl = f" ppl {last_eval.perplexity:.2f}" if last_eval.perplexity is not None else ""
        grid.add_row("eval", f"{last_eval.loss:.4f}{ppl}")
    else:
        grid.add_row("eval", "–")
    grid.add_row("lr", f"{step.learning_rate:.2e}" if step else "–")
    grid.add_row("grad", fmt.number(step.grad_norm, 3) if step and step.grad_norm is not None
                 else "–")
    grid.add_row("tok/s", f"{step.tokens_per_second:,.0f}" if step else "–")
    grid.add_row("epoch", f"{step.epoch:.2f}" if step else "–")
    return grid


def render_setup(state: RunState) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="dim", no_wrap=True, min_width=5)
    grid.add_column(overflow="fold")
    started = state.started
    if started is not None:
        grid.add_row("on", Text(safe_text(started.backend, multiline=False), style="cyan"))
        grid.add_row("", Text(safe_text(started.device), style="dim"))
    settings = state.preflight.settings if state.preflight is not None else {}
    for label, key in (("optim", "optimizer"), ("dtype", "compute dtype"), ("4-bit", "weights")):
        if key in settings:
            grid.add_row(label, Text(safe_text(settings[key]), style="dim"))
    return grid


class RunStats(Static):
    DEFAULT_CSS = """
    RunStats {
        height: auto;
    }
    """

    def show(self, state: RunState) -> None:
        self.update(render_stats(state))


class RunSetup(Static):
    """Backend and device of the run (below the gauge: the first thing to scroll away)."""

    DEFAULT_CSS = """
    RunSetup {
        height: auto;
        margin: 1 0 0 0;
    }
    """

    def show(self, state: RunState) -> None:
        self.update(render_setup(state))
