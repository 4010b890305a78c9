"""Side-by-side answers on held-out prompts: base model, fine-tuned model, reference."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import Vertical
from textual.widgets import Static

from recipes.safe_text import safe_text
from tui.report import Answer


def render_answers(answers: list[Answer]) -> Group | Text:
    if not answers:
        return Text("no answers yet: the evaluation writes them to report.json", style="dim")
    has_base = any(a.base is not None for a in answers)
    staged = len({a.stage for a in answers}) > 1
    parts: list = []
    stage = None
    for i, answer in enumerate(answers, 1):
        if staged and answer.stage != stage:
            stage = answer.stage
            parts.append(Text(f"── {safe_text(stage or 'run', multiline=False)} ──",
                              style="bold magenta"))
        parts.append(Text.assemble((f"#{i} ", "bold"), (safe_text(answer.prompt.strip()), "bold")))
        table = Table(expand=True, show_edge=False, pad_edge=False, box=None, padding=(0, 1))
        if has_base:
            table.add_column("base", ratio=1, overflow="fold", header_style="bold yellow")
        table.add_column("output" if staged else "fine-tuned", ratio=1, overflow="fold",
                         header_style="bold cyan")
        table.add_column("reference", ratio=1, overflow="fold", header_style="bold green")
        cells = [Text(safe_text(answer.finetuned.strip())),
                 Text(safe_text(answer.reference.strip()), style="green")]
        if has_base:
            cells.insert(0, Text(safe_text((answer.base or "").strip()), style="yellow"))
        table.add_row(*cells)
        parts.extend([table, Text("")])
    return Group(*parts)


class AnswersView(Vertical):
    DEFAULT_CSS = """
    AnswersView {
        height: auto;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    AnswersView > Static {
        height: auto;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = "answers on held-out prompts"

    def compose(self):
        yield Static("")

    def show(self, answers: list[Answer]) -> None:
        self.query_one(Static).update(render_answers(answers))
