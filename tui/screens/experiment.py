"""Experiment: one row per variant and every variant's loss curve overlaid, followed live.

Opened from History (an experiment's row) or when an experiment starts from the command
palette. The screen reads the experiment folder every second (tui/experiments.py), so a
running experiment fills in as its variants train, whichever process runs it. Enter opens a
variant's own Run view; e switches the plot between train and eval loss; s stops the experiment
(the running variant saves a checkpoint); r continues a stopped one.
"""

from __future__ import annotations

from pathlib import Path

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from tui.experiment_process import ExperimentProcess
from tui.experiments import ExperimentView
from tui.format import short_path
from tui.widgets.experiment_table import ExperimentTable
from tui.widgets.loss_plot import LossPlot
from tui.widgets.run_stats import STATUS_STYLE

POLL_SECONDS = 1.0


class ExperimentScreen(Screen):
    closes_with_mode_key = True  # a view on top of a mode (SlothlabApp.action_mode)
    AUTO_FOCUS = "ExperimentTable"
    DEFAULT_CSS = """
    ExperimentScreen #summary {
        height: auto;
        padding: 0 1;
    }
    ExperimentScreen LossPlot {
        height: 1fr;
    }
    """
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("e", "toggle_eval", "Train/eval loss"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
    ]

    def __init__(self, folder: Path | None = None,
                 process: ExperimentProcess | None = None) -> None:
        super().__init__()
        self.folder, self.process = folder, process
        self.view: ExperimentView | None = ExperimentView(folder) if folder else None
        self.with_eval = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="summary")
        yield ExperimentTable()
        yield LossPlot("loss")
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = "Experiment"
        self.query_one(LossPlot).empty_message = "no variant has trained yet"
        self.refresh_view(force=True)
        self.set_interval(POLL_SECONDS, self.refresh_view)

    # -- following ---------------------------------------------------------------------
    def refresh_view(self, force: bool = False) -> None:
        process = self.process
        if self.view is None and process is not None and process.folder is not None:
            self.folder = process.folder
            self.view = ExperimentView(process.folder)
        if self.view is None:
            self._show_waiting()
            return
        if self.view.poll() or force:
            self._show()
        self.refresh_bindings()

    def _show_waiting(self) -> None:
        process = self.process
        error = process.error if process is not None else ""
        text = (Text(f"the experiment did not start: {error}", style="red") if error
                else Text("starting the experiment…", style="dim"))
        self.query_one("#summary", Static).update(text)

    def _show(self) -> None:
        view = self.view
        assert view is not None
        plan = view.plan
        name = plan.get("experiment") or view.folder.name
        self.sub_title = f"Experiment {name}"
        status = self.status
        rows = view.rows()
        done = sum(r.get("status") == "finished" for r in rows)
        best = view.table.get("best")
        summary = Text.assemble(
            (name, "bold"), " (tiny mode)" if plan.get("tiny") else "", " · ",
            (status, STATUS_STYLE.get(status, "")), f" · {done}/{len(rows)} variants finished",
            (f" · best {best} by {view.label(view.metric)}" if best else ""),
            "\n", (f"{plan.get('command', '')}  ·  {short_path(view.folder)}/", "dim"))
        if self.process is not None and self.process.error:
            summary.append(f"\n{self.process.error}", style="red")
        self.query_one("#summary", Static).update(summary)
        self.query_one(ExperimentTable).show(rows, view.metric, view.label(view.metric),
                                             view.lower_is_better)
        self._show_plot()

    def _show_plot(self) -> None:
        if self.view is None:
            return
        plot = self.query_one(LossPlot)
        plot.border_title = ("eval loss" if self.with_eval else "train loss") + \
            " · every variant (e switches)"
        plot.set_curves(self.view.curves(self.with_eval))

    @property
    def status(self) -> str:
        if self.process is not None and self.process.running:
            return "stopping" if self.process.stop_requested else "running"
        return self.view.status if self.view is not None else "starting"

    # -- actions -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "stop":
            return self.status == "running"
        if action == "resume":
            return self.view is not None and self.status in ("stopped", "interrupted", "failed")
        return True

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        name = self.query_one(ExperimentTable).current
        run_dir = self.view.run_dir(name) if self.view is not None and name else None
        if run_dir is None:
            self.notify(f"{name} has not started yet", title="no run")
            return
        self.app.open_run(run_dir)

    def action_toggle_eval(self) -> None:
        self.with_eval = not self.with_eval
        self._show_plot()

    def action_stop(self) -> None:
        if self.process is not None and self.process.running:
            from tui.screens.confirm import ConfirmScreen

            def answer(yes: bool | None) -> None:
                if yes and self.process is not None:
                    self.process.request_stop()
                    self.refresh_view(force=True)

            self.app.push_screen(ConfirmScreen(
                "Stop the experiment?", "The running variant finishes its step and saves a "
                "checkpoint; r (or the same command) continues from there.", yes="Stop"), answer)
        elif self.view is not None and self.view.pid:
            self.app.confirm_stop_pid(self.view.pid)

    def action_resume(self) -> None:
        if self.view is None:
            return
        plan = self.view.plan
        process = self.app.start_experiment(
            plan.get("file", ""), tiny=bool(plan.get("tiny")), sets=plan.get("set", []),
            out=self.view.folder, resume=True, show=False)
        if process is not None:
            self.process = process
            self.refresh_view(force=True)

    def action_back(self) -> None:
        self.app.pop_screen()
