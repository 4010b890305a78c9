"""Before / after metrics: base model, fine-tuned model, the change."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import DataTable

from recipes.safe_text import safe_text
from tui.report import MetricRow


def _cell(value: float | None) -> Text:
    return Text("–" if value is None else f"{value:.4f}", justify="right")


def _change(row: MetricRow) -> Text:
    if row.change is None:
        return Text("–", justify="right")
    rel = f" ({row.relative:+.0%})" if row.relative is not None else ""
    lower_is_better = "loss" in row.name or "perplexity" in row.name
    better = row.change < 0 if lower_is_better else row.change > 0
    style = "green" if better else "red" if row.change else ""
    return Text(f"{row.change:+.4f}{rel}", style=style, justify="right")


class MetricsTable(DataTable):
    DEFAULT_CSS = """
    MetricsTable {
        height: auto;
        max-height: 14;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)

    def on_mount(self) -> None:
        self.add_column("metric", key="metric")
        self.add_column(Text("base", justify="right"), key="base")
        self.add_column(Text("fine-tuned", justify="right"), key="finetuned")
        self.add_column(Text("change", justify="right"), key="change")

    def show(self, rows: list[MetricRow]) -> None:
        self.clear()
        for row in rows:
            self.add_row(safe_text(row.name, multiline=False), _cell(row.base), _cell(row.finetuned),
                         _change(row))
