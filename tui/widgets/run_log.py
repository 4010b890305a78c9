"""The run's log: milestones, steps and the process's stderr, capped at LOG_CAP lines."""

from __future__ import annotations

from rich.text import Text
from textual.events import Resize
from textual.widgets import RichLog

from recipes.safe_text import safe_text
from tui.runstate import LOG_CAP, RunState


class RunLog(RichLog):
    DEFAULT_CSS = """
    RunLog {
        height: 1fr;
        padding: 0 1;
        background: $surface;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(max_lines=LOG_CAP, wrap=True, markup=False, highlight=False, **kwargs)
        self._seen = 0
        self._state: RunState | None = None
        self._width = 0

    def on_resize(self, event: Resize) -> None:
        super().on_resize(event)
        # Lines are wrapped when written; re-wrap them all when the width changes.
        if event.size.width != self._width and self._state is not None:
            self._width = event.size.width
            self.clear()
            self._seen = 0
            self.sync(self._state)

    def sync(self, state: RunState) -> None:
        """Append the lines logged since the last call (all of them for a new state)."""
        if state is not self._state:
            self._state, self._seen = state, 0
            self._width = self.size.width
            self.clear()
        new = state.log_total - self._seen
        if new <= 0:
            return
        lines = list(state.log)[-min(new, len(state.log)):]
        self._seen = state.log_total
        for line in lines:
            self.write(Text(safe_text(line.text), style=line.style))
