"""Compare: the loss curves of two or more runs on one plot, with their final numbers."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from recipes.safe_text import safe_text
from tui.history import RunSummary
from tui.screens.history import run_curves
from tui.widgets.loss_plot import LossPlot


class CompareScreen(Screen):
    closes_with_mode_key = True  # a view on top of a mode (SlothlabApp.action_mode)
    DEFAULT_CSS = """
    CompareScreen LossPlot {
        height: 1fr;
    }
    CompareScreen DataTable {
        height: auto;
        max-height: 40%;
    }
    """
    BINDINGS = [Binding("escape", "back", "Back")]

    def __init__(self, runs: list[RunSummary]) -> None:
        super().__init__()
        self.runs = runs

    def compose(self) -> ComposeResult:
        yield Header()
        yield LossPlot("train loss")
        yield DataTable(cursor_type="row", zebra_stripes=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Compare {len(self.runs)} runs"
        self.query_one(LossPlot).set_curves(run_curves(self.runs, with_eval=False))
        table = self.query_one(DataTable)
        table.add_columns("run", "recipe", "status", "steps", "final loss", "eval loss")
        for run in self.runs:
            state = run.state
            table.add_row(
                safe_text(run.name, multiline=False), safe_text(run.recipe, multiline=False),
                state.status, str(state.current_step),
                Text(f"{run.final_loss:.4f}" if run.final_loss is not None else "–",
                     justify="right"),
                Text(f"{run.eval_loss:.4f}" if run.eval_loss is not None else "–",
                     justify="right"))

    def action_back(self) -> None:
        self.app.pop_screen()
