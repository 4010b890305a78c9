"""Where a run's outputs are: adapter, report, loss plot, events, recipe."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.format import short_path


def render_artifacts(summary: list[tuple[str, str]],
                     artifacts: list[tuple[str, object, bool]]) -> Table:
    grid = Table.grid(padding=(0, 1))
    grid.add_column(style="bold", no_wrap=True)
    grid.add_column(overflow="fold")
    for label, value in summary:
        grid.add_row(label, value)
    for label, path, exists in artifacts:
        text = Text(short_path(str(path)), style="" if exists else "dim strike")
        if not exists:
            text.append("  (not there yet)", style="dim")
        grid.add_row(label, text)
    return grid


class ArtifactsView(Static):
    DEFAULT_CSS = """
    ArtifactsView {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, summary: list[tuple[str, str]],
             artifacts: list[tuple[str, object, bool]]) -> None:
        self.update(render_artifacts(summary, artifacts))
