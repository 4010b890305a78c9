"""Past runs, newest first: status, steps, losses; space marks runs to compare."""

from __future__ import annotations

from rich.text import Text
from textual.binding import Binding
from textual.widgets import DataTable

from recipes.safe_text import safe_text
from tui.history import RunSummary
from tui.widgets.run_stats import STATUS_STYLE


class RunsTable(DataTable):
    BINDINGS = [Binding("enter", "select_cursor", "Open")]
    DEFAULT_CSS = """
    RunsTable {
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    RunsTable:focus {
        border: round $primary;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="row", zebra_stripes=True, **kwargs)
        self.border_title = "runs"
        self.runs: list[RunSummary] = []
        self.marked: set[str] = set()

    def on_mount(self) -> None:
        # The numbers before the recipe: at 80 columns a long run name leaves them in view.
        for label, key in (("", "mark"), ("run", "run"), ("status", "status"), ("step", "step"),
                           ("loss", "loss"), ("eval", "eval"), ("recipe", "recipe"),
                           ("note", "note")):
            self.add_column(label, key=key)

    def show(self, runs: list[RunSummary]) -> None:
        current = self.current.name if self.current else None
        self.runs = runs
        self.marked &= {r.name for r in runs}
        self.clear()
        for run in runs:
            state = run.state
            status = state.status
            step = f"{state.current_step}/{state.total_steps or '?'}"
            loss = f"{run.final_loss:.4f}" if run.final_loss is not None else "–"
            eval_loss = f"{run.eval_loss:.4f}" if run.eval_loss is not None else "–"
            recipe = safe_text(run.recipe, multiline=False) + (" (tiny)" if run.tiny else "")
            self.add_row(self._mark(run.name), safe_text(run.label, multiline=False),
                         Text(status, style=STATUS_STYLE.get(status, "")),
                         Text(step, justify="right"), Text(loss, justify="right"),
                         Text(eval_loss, justify="right"), recipe,
                         Text(safe_text(run.note, multiline=False), style="italic"),
                         key=run.name)
        names = [r.name for r in runs]
        if current in names:
            self.move_cursor(row=names.index(current))

    def _mark(self, name: str) -> Text:
        return Text("●", style="bold magenta") if name in self.marked else Text("○", style="dim")

    @property
    def current(self) -> RunSummary | None:
        if not self.runs or self.cursor_row < 0 or self.cursor_row >= len(self.runs):
            return None
        return self.runs[self.cursor_row]

    def toggle_mark(self) -> None:
        run = self.current
        if run is None:
            return
        self.marked ^= {run.name}
        self.update_cell(run.name, "mark", self._mark(run.name))

    @property
    def marked_runs(self) -> list[RunSummary]:
        return [r for r in self.runs if r.name in self.marked]
