"""Where a run's outputs are: the run's folder once, then adapter, report, loss plot, events,
recipe relative to it (an 80-column terminal has no room for the folder on every line).

A path too long for its column wraps after a ``/``, never inside a name, so each line is a
piece of the path a person can read (and the whole one can be copied from report.md).
"""

from __future__ import annotations

from pathlib import Path

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
    pieces = [p for p in pieces if p]  # a trailing "/" leaves no empty last line
    lines, line = [], ""
    for piece in pieces:
        if line and len(line) + len(piece) > width:
            lines.append(line)
            line = ""
        line += piece
    lines.append(line)
    return "\n".join(lines)


def _inside(path: object, root: Path | None) -> str:
    """``path`` relative to the run's folder when it lies inside it, else as short_path."""
    if root is not None:
        try:
            return str(Path(str(path)).resolve().relative_to(root.resolve()))
        except (ValueError, OSError):
            pass
    return short_path(str(path))


def render_artifacts(summary: list[tuple[str, str]],
                     artifacts: list[tuple[str, object, bool]], width: int = 0,
                     root: Path | None = None) -> Table:
    """``width``: the widget's content width (0: unknown, no wrapping of our own); ``root``:
    the run's folder, shown once, the artifacts inside it relative to it."""
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    labels = [label for label, _ in summary] + [label for label, _, _ in artifacts]
    column = width - max(map(len, [*labels, "folder"]), default=0) - 1 if width else 0
    for label, value in summary:
        grid.add_row(safe_text(label, multiline=False), Text(safe_text(value)))
    if root is not None:
        folder = safe_text(short_path(root), multiline=False) + "/"
        grid.add_row("folder", Text(wrap_path(folder, column), style="cyan"))
    for label, path, exists in artifacts:
        shown = safe_text(_inside(path, root), multiline=False)
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
        self._root: Path | None = None

    def show(self, summary: list[tuple[str, str]],
             artifacts: list[tuple[str, object, bool]], root: Path | None = None) -> None:
        self._shown, self._root = (summary, artifacts), root
        self.update(render_artifacts(summary, artifacts, self.content_size.width, root))

    def on_resize(self) -> None:
        self.update(render_artifacts(*self._shown, self.content_size.width, self._root))
