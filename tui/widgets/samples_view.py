"""The latest greedy samples from an eval: prompt, reference and the model's output."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from recipes.events import Sample
from recipes.safe_text import safe_text


def render_samples(samples: list[Sample], step: int | None) -> Group | Text:
    if not samples:
        return Text("no greedy samples yet: they appear at each eval "
                    "(eval_steps, eval_prompts in the recipe)", style="dim")
    parts = []
    for i, sample in enumerate(samples, 1):
        table = Table.grid(padding=(0, 1))
        table.add_column(style="bold", no_wrap=True, width=9)
        table.add_column(overflow="fold")
        table.add_row(f"#{i} prompt", Text(safe_text(sample.prompt.strip())))
        table.add_row("reference", Text(safe_text(sample.reference.strip()), style="green"))
        table.add_row("output", Text(safe_text(sample.output.strip()), style="cyan"))
        parts.append(table)
        parts.append(Text(""))
    return Group(Text(f"at step {step}", style="dim"), *parts)


def render_stage_samples(by_stage: dict[str, tuple[int, list[Sample]]]) -> Group | Text:
    """The latest samples of each stage, each under its stage's name (one stage: no name)."""
    if len(by_stage) <= 1:
        step, samples = next(iter(by_stage.values()), (None, []))
        return render_samples(samples, step)
    parts: list = []
    for stage, (step, samples) in by_stage.items():
        parts.append(Text(f"── {safe_text(stage or 'run', multiline=False)} ──",
                          style="bold magenta"))
        parts.append(render_samples(samples, step))
    return Group(*parts)


class SamplesView(VerticalScroll):
    DEFAULT_CSS = """
    SamplesView {
        height: 1fr;
        padding: 0 1;
    }
    SamplesView > Static {
        height: auto;
    }
    """

    def compose(self):
        yield Static(render_samples([], None))

    def show(self, samples: list[Sample], step: int | None) -> None:
        self.query_one(Static).update(render_samples(samples, step))

    def show_stages(self, by_stage: dict[str, tuple[int, list[Sample]]]) -> None:
        self.query_one(Static).update(render_stage_samples(by_stage))
