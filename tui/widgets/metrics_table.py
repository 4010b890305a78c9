"""Before / after metrics: base model, fine-tuned model, the change.

The change is green when it is an improvement (lower for loss and perplexity, which say so),
with the relative change beside it unless the base is near zero ("n/a" then: +0.2 from 0.001
is not +19900%). The highlighted row's metric is explained in one line (``METRIC_HELP``).
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.message import Message
from textual.widgets import DataTable

from recipes.safe_text import safe_text
from tui.report import MetricRow, lower_is_better

METRIC_HELP = {
    "rouge1": "ROUGE-1: share of single words shared with the reference (F1, 0-1).",
    "rouge2": "ROUGE-2: share of word pairs shared with the reference (F1, 0-1).",
    "rougeL": "ROUGE-L: longest common word sequence with the reference (F1, 0-1).",
    "bleu": "BLEU: word n-gram precision against the reference, short answers penalised (0-100).",
    "chrf": "chrF: character n-gram F-score against the reference (0-100); fair to rich "
            "morphology.",
    "token_f1": "Token F1: word overlap with the reference, as SQuAD scores it (0-1).",
    "exact_match": "Exact match: share of answers equal to the reference after normalising "
                   "(0-1).",
    "accuracy": "Accuracy: share of answers with the reference's label (0-1).",
    "weighted_f1": "Weighted F1: F1 per label, averaged by how often each label occurs (0-1).",
    "zindi": "Zindi score: the challenge's mean of F1 and chrF, with a bonus for fewer "
             "parameters (0-1).",
    "eval_loss": "Eval loss: mean cross-entropy on the reference answers' tokens; lower is "
                 "better.",
    "perplexity": "Perplexity: exp(eval loss), how many tokens the model hesitates between; "
                  "lower is better.",
}


def metric_help(name: str) -> str:
    """One line on what ``name`` measures ("rougeL", "f1/xnli/hau", "eval_loss/as")."""
    aliases = {key.lower().replace("_", ""): key for key in METRIC_HELP}
    head, _, tail = name.partition("/")
    base = aliases.get(head.lower().replace("_", ""), head)
    name = f"{base}/{tail}" if tail else base
    if name in METRIC_HELP:
        return METRIC_HELP[name]
    if base in METRIC_HELP:
        return f"{METRIC_HELP[base]} ({name.split('/', 1)[1]} only)"
    if base == "f1":
        return f"F1 on {name.split('/', 1)[1]} (0-1)."
    return f"{name}: {'lower' if lower_is_better(name) else 'higher'} is better."


def _cell(value: float | None) -> Text:
    return Text("–" if value is None else f"{value:.4f}", justify="right")


def _name(row: MetricRow) -> Text:
    text = Text(safe_text(row.name, multiline=False))
    if lower_is_better(row.name):
        text.append(" ↓ lower is better", style="dim")
    return text


def _change(row: MetricRow) -> Text:
    if row.change is None:
        return Text("–", justify="right")
    better = row.change < 0 if lower_is_better(row.name) else row.change > 0
    style = "green" if better else "red" if row.change else ""
    return Text(f"{row.change:+.4f}", style=style, justify="right")


def _relative(row: MetricRow) -> Text:
    if row.change is None:
        return Text("–", justify="right")
    if row.relative is None:
        return Text("n/a", style="dim", justify="right")
    return Text(f"{row.relative:+.0%}", justify="right")


class MetricsTable(DataTable):
    @dataclass
    class Explained(Message):
        """The highlighted metric changed: ``help`` is its one-line explanation."""

        help: str

    DEFAULT_CSS = """
    MetricsTable {
        height: auto;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.rows_shown: list[MetricRow] = []

    def on_mount(self) -> None:
        self.add_column("metric", key="metric")
        self.add_column(Text("base", justify="right"), key="base")
        self.add_column(Text("fine-tuned", justify="right"), key="finetuned")
        self.add_column(Text("change", justify="right"), key="change")
        self.add_column(Text("relative", justify="right"), key="relative")

    def show(self, rows: list[MetricRow]) -> None:
        self.rows_shown = list(rows)
        self.clear()
        for row in rows:
            self.add_row(_name(row), _cell(row.base), _cell(row.finetuned), _change(row),
                         _relative(row))
        self._explain()

    @property
    def current_help(self) -> str:
        rows = self.rows_shown
        if not rows or not 0 <= self.cursor_row < len(rows):
            return ""
        return safe_text(metric_help(rows[self.cursor_row].name), multiline=False)

    def _explain(self) -> None:
        self.tooltip = self.current_help or None
        self.post_message(self.Explained(self.current_help))

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._explain()
