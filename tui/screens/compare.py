"""Compare: two or more runs side by side.

The train loss curves overlaid (p: the eval loss curves instead; y: log scale), then one table
with each run's final numbers and its fine-tuned metrics side by side, then a table of only
the settings that differ between the runs (read from each run's resolved recipe.yaml).
"""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from recipes.errors import RecipeError
from recipes.rundir import RECIPE_FILE
from recipes.safe_text import safe_text
from recipes.schema import read_yaml
from tui.history import RunSummary
from tui.widgets.loss_plot import Curve, LossPlot

CURVES = {"train": "train loss", "eval": "eval loss"}


def compare_curves(runs: list[RunSummary], kind: str) -> list[Curve]:
    curves = []
    for run in runs:
        train, evals = run.state.train_loss, run.state.eval_loss
        xs, ys = (train if kind == "train" else evals).points()
        sparse = kind == "eval" and len(xs) < 2
        curves.append(Curve(run.label, xs, ys, marker="dot" if sparse else "braille"))
    return curves


def final_metrics(run: RunSummary) -> dict[str, float]:
    """The fine-tuned metrics the run measured (its last `metrics` event for that stage)."""
    return dict(run.state.metrics.get("finetuned", {}))


def _shown(value: Any) -> str:
    return safe_text(value if isinstance(value, str) else repr(value), multiline=False)[:40]


def differing_settings(runs: list[RunSummary]) -> dict[str, list[Any]]:
    """Recipe fields whose values are not the same in every run: field -> value per run
    ("?" where a run's recipe.yaml cannot be read)."""
    recipes: list[dict[str, Any]] = []
    for run in runs:
        try:
            data, _ = read_yaml(run.path / RECIPE_FILE)
        except RecipeError:
            data = {}
        recipes.append(data if isinstance(data, dict) else {})
    keys = list(dict.fromkeys(k for data in recipes for k in data))
    missing = object()
    return {key: ["?" if data.get(key, missing) is missing else data[key] for data in recipes]
            for key in keys
            if len({repr(data.get(key, missing)) for data in recipes}) > 1}


class CompareScreen(Screen):
    closes_with_mode_key = True  # a view on top of a mode (SlothlabApp.action_mode)
    DEFAULT_CSS = """
    CompareScreen LossPlot {
        height: 1fr;
        min-height: 10;
    }
    CompareScreen #tables {
        height: auto;
        max-height: 50%;
    }
    CompareScreen DataTable {
        height: auto;
    }
    CompareScreen .caption {
        color: $text-muted;
        padding: 0 1;
    }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("p", "next_plot", "Train/eval", show=False),
        Binding("y", "log_scale", "Log scale", show=False),
    ]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs
        self.kind = "train"

    def compose(self) -> ComposeResult:
        yield Header()
        yield LossPlot("train loss")
        with VerticalScroll(id="tables"):
            yield DataTable(cursor_type="row", zebra_stripes=True, id="finals")
            yield Static("settings that differ", classes="caption", id="settings-caption")
            yield DataTable(cursor_type="row", zebra_stripes=True, id="settings")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Compare {len(self.runs)} runs"
        self._draw_plot()
        self._fill_finals()
        self._fill_settings()

    def _draw_plot(self) -> None:
        plot = self.query_one(LossPlot)
        plot.border_title = "  ".join(f"[reverse] {label} [/]" if key == self.kind else label
                                      for key, label in CURVES.items())
        plot.border_subtitle = "p train/eval · y log"
        plot.empty_message = f"no {CURVES[self.kind]} recorded in these runs"
        plot.set_curves(compare_curves(self.runs, self.kind))

    def _fill_finals(self) -> None:
        table = self.query_one("#finals", DataTable)
        metrics = list(dict.fromkeys(k for run in self.runs for k in final_metrics(run)))
        table.add_columns("run", "recipe", "status", "steps", "final loss", "eval loss",
                          *metrics)
        for run in self.runs:
            state, finals = run.state, final_metrics(run)
            table.add_row(
                safe_text(run.label, multiline=False), safe_text(run.recipe, multiline=False),
                state.status, str(state.current_step),
                Text(f"{run.final_loss:.4f}" if run.final_loss is not None else "–",
                     justify="right"),
                Text(f"{run.eval_loss:.4f}" if run.eval_loss is not None else "–",
                     justify="right"),
                *(Text(f"{finals[m]:.4f}" if m in finals else "–", justify="right")
                  for m in metrics))

    def _fill_settings(self) -> None:
        table = self.query_one("#settings", DataTable)
        differ = differing_settings(self.runs)
        caption = self.query_one("#settings-caption", Static)
        if not differ:
            caption.update("settings: the same recipe in every run")
            table.display = False
            return
        caption.update(f"settings that differ ({len(differ)})")
        table.add_columns("setting", *(safe_text(run.label, multiline=False)
                                       for run in self.runs))
        for key, values in differ.items():
            table.add_row(safe_text(key, multiline=False), *(_shown(v) for v in values))

    def action_next_plot(self) -> None:
        self.kind = "eval" if self.kind == "train" else "train"
        self._draw_plot()

    def action_log_scale(self) -> None:
        self.query_one(LossPlot).toggle_log()

    def action_back(self) -> None:
        self.app.pop_screen()
