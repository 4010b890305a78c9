"""An experiment's variants, one row each: status, steps, losses, the primary metric, ★ best."""

from __future__ import annotations

from typing import Any

from textual.binding import Binding
from textual.widgets import DataTable

from tui.experiment_view import COLUMNS, row_cells


class ExperimentTable(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open run")]
    DEFAULT_CSS = """
    ExperimentTable {
        height: auto;
        max-height: 50%;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ExperimentTable:focus {
        border: round $primary;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.border_title = "variants"
        self.names: list[str] = []
        self._label = ""

    def show(self, rows: list[dict[str, Any]], metric: str, label: str,
             lower_is_better: bool = False) -> None:
        current = self.current
        if label != self._label or not self.columns:
            self.clear(columns=True)
            for col in COLUMNS:
                self.add_column(col.format(metric=label or "metric"), key=col)
            self._label = label
        self.clear()
        self.names = [r["variant"] for r in rows]
        for row in rows:
            self.add_row(*row_cells(row, metric, lower_is_better), key=row["variant"])
        if current in self.names:
            self.move_cursor(row=self.names.index(current))

    @property
    def current(self) -> str | None:
        if not self.names or not 0 <= self.cursor_row < len(self.names):
            return None
        return self.names[self.cursor_row]
