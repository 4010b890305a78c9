"""Results: before / after metrics, side-by-side answers, and where the outputs are."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from tui.report import load_results
from tui.runstate import RunState
from tui.widgets.answers_view import AnswersView
from tui.widgets.artifacts_view import ArtifactsView
from tui.widgets.metrics_table import MetricsTable


class ResultsScreen(Screen):
    closes_with_mode_key = True  # a view on top of a mode (SlothlabApp.action_mode)
    DEFAULT_CSS = """
    ResultsScreen #results-body {
        height: 1fr;
    }
    ResultsScreen #top {
        height: auto;
    }
    ResultsScreen #metrics-box {
        width: 3fr;
    }
    ResultsScreen #artifacts-box {
        width: 2fr;
    }
    ResultsScreen #artifacts-box, ResultsScreen #metrics-box {
        height: auto;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ResultsScreen #no-report {
        padding: 0 1;
        color: $text-muted;
        height: auto;
    }
    ResultsScreen AnswersView {
        height: auto;
    }
    ResultsScreen.-narrow #top {
        layout: vertical;
    }
    ResultsScreen.-narrow #metrics-box, ResultsScreen.-narrow #artifacts-box {
        width: 1fr;
    }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("e", "export", "Export"),
    ]

    def __init__(self, state: RunState) -> None:
        super().__init__()
        self.state = state

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="results-body"):
            with Horizontal(id="top"):
                with Vertical(id="metrics-box"):
                    yield Static("", id="no-report")
                    yield MetricsTable()
                with Vertical(id="artifacts-box"):
                    yield ArtifactsView()
            yield AnswersView()
        yield Footer()

    def on_mount(self) -> None:
        name = self.state.run_dir.name if self.state.run_dir else self.state.title
        self.sub_title = f"Results · {name}"
        self.query_one("#artifacts-box").border_title = "run"
        self.query_one("#metrics-box").border_title = "before / after"
        self.action_reload()

    def action_reload(self) -> None:
        results = load_results(self.state.run_dir, self.state)
        size = f", {results.eval_size} examples" if results.eval_size else ""
        self.query_one("#metrics-box").border_title = (
            f"before / after · {results.eval_split} split{size}")
        self.query_one(ArtifactsView).show(results.summary, results.artifacts)
        note = self.query_one("#no-report", Static)
        table = self.query_one(MetricsTable)
        table.show(results.metrics)
        table.display = bool(results.metrics)
        message: Text | None = None
        if results.report_error:
            message = Text(results.report_error, style="red")
        elif not results.report_found:
            message = Text("no evaluation report yet (report.json)", style="italic")
            if not results.metrics:
                message.append("\nthe before/after metrics appear when the evaluation has run",
                               style="dim")
        note.update(message or "")
        note.display = message is not None
        self.query_one(AnswersView).show(results.answers)

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_export(self) -> None:
        """Merged model / GGUF / Ollama, in a `slothlab export --json` subprocess."""
        from tui.runner import SLOTHLAB
        from tui.screens.export import ExportScreen

        if self.state.run_dir is None:
            self.notify("this run has no folder to export from")
            return
        self.app.push_screen(ExportScreen(self.state.run_dir,
                                          getattr(self.app, "slothlab", SLOTHLAB)))
