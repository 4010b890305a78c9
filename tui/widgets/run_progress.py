"""Progress with ETA: step / total, percentage, elapsed and remaining time.

After the last step the ETA gives way to "final eval…" (the evaluation and saving take a
while and have no steps); a run that ended before its total is known gets a still, empty bar
(the indeterminate one animates, which would say it is still working).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.containers import Horizontal
from textual.widgets import Label, ProgressBar

from tui import format as fmt
from tui.runstate import RunState


class RunProgress(Horizontal):
    DEFAULT_CSS = """
    RunProgress {
        height: 1;
        padding: 0 1;
    }
    RunProgress ProgressBar {
        width: 1fr;
    }
    RunProgress ProgressBar Bar {
        width: 1fr;
    }
    RunProgress Label {
        width: auto;
        padding: 0 0 0 1;
    }
    """

    def compose(self) -> ComposeResult:
        yield ProgressBar(total=None, show_eta=False, show_percentage=False)
        yield Label("", id="progress-text")

    def show(self, state: RunState) -> None:
        bar = self.query_one(ProgressBar)
        step, total = state.current_step, state.total_steps
        if total:
            bar.update(total=total, progress=min(step, total))
        elif state.terminal:
            bar.update(total=1, progress=0)  # still: nothing is happening any more
        else:
            bar.update(total=None)  # indeterminate while it starts
        eta = state.eta()
        if state.terminal:
            remaining = state.status
        elif state.steps_done:
            remaining = "final eval…"
        else:
            remaining = f"ETA {fmt.duration(eta)}" if eta is not None else "ETA --:--"
        share = f" ({step / total:.0%})" if total else ""
        stage = f"{state.stage} · " if state.stage else ""
        self.query_one("#progress-text", Label).update(
            f"{stage}step {step}/{total or '?'}{share} · {fmt.duration(state.elapsed())} · {remaining}")
