"""Where a run's outputs are: adapter, report, loss plot, events, recipe.

A path too long for its column wraps after a ``/``, never inside a name, so each line is a
piece of the path a person can read (and the whole one can be copied from report.md).
"""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from recipes.safe_text import safe_text
from tui.format import short_path


def wrap_path(path: str, width: int) -> str:
    """``path`` with line breaks after ``/`` so no line is over ``width`` (a single name
    longer than that is left for the column to fold)."""
    if width <= 0 or len(path) <= width:
        return path
    pieces = [p + "/" for p in path.split("/")[:-1]] + [path.rsplit("/", 1)[-1]]
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "\n".join(lines)


def render_artifacts(summary: list[tuple[str, str]],
                     artifacts: list[tuple[str, object, bool]], width: int = 0) -> Table:
    """``width``: the widget's content width (0: unknown, no wrapping of our own)."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    labels = [label for label, _ in summary] + [label for label, _, _ in artifacts]
    column = width - max(map(len, labels), default=0) - 1 if width else 0
    for label, value in summary:
        grid.add_row(safe_text(label, multiline=False), Text(safe_text(value)))
    for label, path, exists in artifacts:
        shown = safe_text(short_path(str(path)), multiline=False)
        if not exists:
            shown += "  (not there yet)"
        text = Text(wrap_path(shown, column), style="" if exists else "dim")
        if not exists:
            text.stylize("strike", 0, len(text) - len("  (not there yet)"))
        grid.add_row(label, text)
    return grid


class ArtifactsView(Static):
    DEFAULT_CSS = """
    ArtifactsView {
        height: auto;
        padding: 0 1;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._shown: tuple[list[tuple[str, str]], list[tuple[str, object, bool]]] = ([], [])

    def show(self, summary: list[tuple[str, str]],
             artifacts: list[tuple[str, object, bool]]) -> None:
        self._shown = (summary, artifacts)
        self.update(render_artifacts(summary, artifacts, self.content_size.width))

    def on_resize(self) -> None:
        self.update(render_artifacts(*self._shown, self.content_size.width))
