"""History: past runs from runs/ (finished, stopped, failed or still running).

Reopen one (its full Run view, following it while it runs), mark several with space and
compare them, resume a stopped one, give one a name (n) or a note (a), delete one (d, asked
first; never a running one). The list refreshes itself every ``REFRESH_SECONDS``: a running
run's step and loss move, a run started elsewhere appears.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header

from recipes.errors import SlothlabError
from recipes.safe_text import safe_text
from tui.experiments import scan_experiments
from tui.format import short_path
from tui.history import RunSummary, delete_run, scan_runs, write_notes
from tui.runstate import RunState
from tui.screens.confirm import ConfirmScreen
from tui.screens.prompt import PromptScreen
from tui.widgets.experiment_list import ExperimentList
from tui.widgets.loss_plot import Curve, LossPlot
from tui.widgets.runs_table import RunsTable

REFRESH_SECONDS = 2.0


def run_curves(runs: list[RunSummary], with_eval: bool) -> list[Curve]:
    curves = []
    for run in runs:
        xs, ys = run.state.train_loss.points()
        label = "train" if with_eval else run.label
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
        # n, a and d are written under the list; the list refreshes itself (f5 still works).
        Binding("t", "chat", "Chat", show=False),
        Binding("n", "rename", "Name", show=False),
        Binding("a", "annotate", "Note", show=False),
        Binding("d", "delete", "Delete", show=False),
        Binding("f5", "rescan", "Refresh", show=False),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        yield ExperimentList()  # one row per experiment (its runs are not listed below)
        yield RunsTable()
        yield LossPlot("loss")
        yield Footer()

    def on_mount(self) -> None:
        self.query_one(RunsTable).border_subtitle = (
            f"t chat · n name · a note · d delete · {short_path(self.app.runs_dir)}/")
        self.query_one(LossPlot).empty_message = "no steps recorded"
        self._shown: list[tuple] = []
        self.action_rescan()
        self.set_interval(REFRESH_SECONDS, self._refresh)

    def _refresh(self) -> None:
        """Rescan (cheap: unchanged finished runs are not read again) and redraw only what
        changed: a running run's step, a new run, a new name."""
        if self.is_current:
            self.action_rescan(only_if_changed=True)

    def on_screen_resume(self) -> None:
        self.action_rescan()

    @property
    def table(self) -> RunsTable:
        return self.query_one(RunsTable)

    def action_rescan(self, only_if_changed: bool = False) -> None:
        runs = scan_runs(self.app.runs_dir)
        self.query_one(ExperimentList).show(scan_experiments(self.app.runs_dir))
        shown = [(r.name, r.label, r.note, r.state.status, r.state.version) for r in runs]
        if only_if_changed and shown == getattr(self, "_shown", None):
            return
        self._shown = shown
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
        plot.border_title = f"loss · {safe_text(run.label, multiline=False)}" if run else "loss"
        resume_from = RunState.from_run_dir(run.path).resume_from if run else None
        plot.border_subtitle = f"r resumes from {resume_from}" if resume_from else ""
        plot.border_subtitle = safe_text(run.note, multiline=False)[:80] if run else ""
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
        if action in ("open", "mark", "chat", "rename", "annotate"):
            return run is not None
        if action == "delete":
            return run is not None and run.state.status not in ("starting", "running",
                                                                 "stopping")
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

    def action_rename(self) -> None:
        run = self.table.current
        if run is None:
            return

        def named(text: str | None) -> None:
            if text is not None:
                self._write(run, name=text)

        self.app.push_screen(PromptScreen(
            f"Name for {run.name}:", run.notes.get("name", ""),
            "Shown in History and Compare; the folder keeps its name (paths and resume "
            "commands stay right). Empty: back to the folder's name."), named)

    def action_annotate(self) -> None:
        run = self.table.current
        if run is None:
            return

        def noted(text: str | None) -> None:
            if text is not None:
                self._write(run, note=text)

        self.app.push_screen(PromptScreen(f"Note on {run.label}:", run.note,
                                          "One line, kept in the run folder's notes.json."),
                             noted)

    def _write(self, run: RunSummary, **changes: str) -> None:
        try:
            write_notes(run.path, **changes)
        except OSError as exc:
            self.notify(str(exc), title="could not save", severity="error", markup=False)
        self.action_rescan()

    def action_delete(self) -> None:
        run = self.table.current
        if run is None:
            return
        if run.state.status in ("starting", "running", "stopping"):
            self.notify("a running run cannot be deleted: stop it first", severity="warning")
            return

        def answer(yes: bool | str | None) -> None:
            if yes is not True:
                return
            try:
                delete_run(run)
            except (SlothlabError, OSError) as exc:
                self.notify(str(exc), title="not deleted", severity="error", markup=False)
            self.table.marked.discard(run.name)
            self.action_rescan()

        self.app.push_screen(ConfirmScreen(
            f"Delete {run.label}?",
            f"Removes {short_path(run.path)}/ with its checkpoints, adapter and report. "
            "This cannot be undone.", yes="Delete", no="Keep"), answer)
