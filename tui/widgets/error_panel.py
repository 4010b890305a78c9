"""A failed run's error and what to do about it (hidden while there is none)."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from recipes.safe_text import safe_text


class ErrorPanel(Static):
    DEFAULT_CSS = """
    ErrorPanel {
        display: none;
        height: auto;
        max-height: 12;
        border: round $error;
        border-title-color: $error;
        padding: 0 1;
        margin: 0 0 0 0;
    }
    ErrorPanel.-visible {
        display: block;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "failed"
        self._shown: tuple[tuple[str, str] | None, bool] | None = None

    def show(self, error: tuple[str, str] | None, kept: bool = False) -> None:
        """``kept``: the run directory exists (a run that fails before creating one, e.g. on a
        missing dataset or a hub download, leaves nothing to reopen)."""
        if (error, kept) == self._shown:
            return
        self._shown = (error, kept)
        self.set_class(error is not None, "-visible")
        if error is None:
            self.update("")
            return
        what, advice = error
        text = Text(safe_text(what), style="bold")
        if advice:
            text.append(f"\n→ {safe_text(advice)}", style="yellow")
        if kept:
            text.append("\nThe run directory is kept: reopen it from History (3).", style="dim")
        self.update(text)
