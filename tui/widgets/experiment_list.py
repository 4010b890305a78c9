"""History's experiments, one row each (its runs grouped): status, variants done, the best one.

Selecting a row opens the Experiment screen (comparison table and overlaid loss curves).
"""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from tui.experiments import ExperimentSummary
from tui.widgets.run_stats import STATUS_STYLE


class ExperimentList(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open")]
    DEFAULT_CSS = """
    ExperimentList {
        height: auto;
        max-height: 35%;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ExperimentList:focus {
        border: round $primary;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.border_title = "experiments"
        self.experiments: list[ExperimentSummary] = []

    def on_mount(self) -> None:
        for label in ("experiment", "recipe", "status", "variants", "best", "primary metric"):
            self.add_column(label, key=label)

    def show(self, experiments: list[ExperimentSummary]) -> None:
        """Redraws only when something changed (History rescans every few seconds)."""
        shown = [(x.name, x.status, x.finished, x.total, x.best) for x in experiments]
        if shown == getattr(self, "_signature", None):
            return
        self._signature = shown
        current = self.cursor_row
        self.experiments = experiments
        self.display = bool(experiments)
        self.clear()
        for x in experiments:
            metric, value = x.best_value()
            self.add_row(
                x.name, x.recipe + (" (tiny)" if x.tiny else ""),
                Text(x.status, style=STATUS_STYLE.get(x.status, "")),
                Text(f"{x.finished}/{x.total} done", justify="right"), x.best or "–",
                f"{metric} {value:.4f}" if value is not None else metric or "–", key=x.name)
        if 0 <= current < len(experiments):
            self.move_cursor(row=current)

    @property
    def current(self) -> ExperimentSummary | None:
        if not self.experiments or not 0 <= self.cursor_row < len(self.experiments):
            return None
        return self.experiments[self.cursor_row]

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        event.stop()  # History's own handler follows the runs table

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        event.stop()
        if self.current is not None:
            from tui.screens.experiment import ExperimentScreen

            self.app.push_screen(ExperimentScreen(self.current.path))
