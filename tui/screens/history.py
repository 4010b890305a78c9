"""History: past runs from runs/ (finished, stopped, failed or still running).

Reopen one (its full Run view, following it while it runs), mark several with space and
compare their loss curves, resume a stopped one.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from tui.experiments import scan_experiments
from tui.format import short_path
from tui.history import RunSummary, scan_runs
from tui.widgets.experiment_list import ExperimentList
from tui.widgets.loss_plot import Curve, LossPlot
from tui.widgets.runs_table import RunsTable


def run_curves(runs: list[RunSummary], with_eval: bool) -> list[Curve]:
    curves = []
    for run in runs:
        xs, ys = run.state.train_loss.points()
        label = "train" if with_eval else run.name
        curves.append(Curve(label, xs, ys))
        if with_eval:
            exs, eys = run.state.eval_loss.points()
            if exs:
                curves.append(Curve("eval", exs, eys))
    return curves


class HistoryScreen(Screen):
    SUB_TITLE = "History"
    AUTO_FOCUS = "RunsTable"
    DEFAULT_CSS = """
    HistoryScreen RunsTable {
        height: 1fr;
    }
    HistoryScreen LossPlot {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("space", "mark", "Mark"),
        Binding("c", "compare", "Compare"),
        Binding("r", "resume", "Resume"),
        Binding("t", "chat", "Chat"),
        Binding("f5", "rescan", "Refresh"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ExperimentList()  # one row per experiment (its runs are not listed below)
        yield RunsTable()
        yield LossPlot("loss")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunsTable).border_subtitle = short_path(self.app.runs_dir) + "/"
        self.query_one(LossPlot).empty_message = "no steps recorded"
        self.action_rescan()

    def on_screen_resume(self) -> None:
        self.action_rescan()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def action_rescan(self) -> None:
        runs = scan_runs(self.app.runs_dir)
        self.query_one(ExperimentList).show(scan_experiments(self.app.runs_dir))
        self.table.show(runs)
        if not runs:
            self.query_one(LossPlot).empty_message = (
                f"no runs in {short_path(self.app.runs_dir) or '.'}/ yet")
        self._show_plot()

    def _show_plot(self) -> None:
        plot = self.query_one(LossPlot)
        marked = self.table.marked_runs
        if marked:
            plot.border_title = f"loss · comparing {len(marked)} marked run(s)"
            plot.set_curves(run_curves(marked, with_eval=False))
            return
        run = self.table.current
        plot.border_title = f"loss · {run.name}" if run else "loss"
        plot.set_curves(run_curves([run], with_eval=True) if run else [])

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        if not self.table.marked:
            self._show_plot()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_open()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        run = self.table.current if self.is_mounted else None
        if action == "resume":
            return bool(run and run.state.resumable)
        if action in ("open", "mark", "chat"):
            return run is not None
        return True

    def action_open(self) -> None:
        run = self.table.current
        if run is not None:
            self.app.open_run(run.path)

    def action_chat(self) -> None:
        run = self.table.current
        if run is not None:
            self.app.open_chat(run.path)

    def action_mark(self) -> None:
        self.table.toggle_mark()
        self._show_plot()

    def action_compare(self) -> None:
        marked = self.table.marked_runs
        if len(marked) < 2:
            self.notify("mark two or more runs with space, then press c", title="compare")
            return
        from tui.screens.compare import CompareScreen

        self.app.push_screen(CompareScreen(marked))

    def action_resume(self) -> None:
        run = self.table.current
        if run is not None:
            self.app.resume_run(run.path)
