"""Results: before / after metrics, side-by-side answers, and where the outputs are."""

from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from recipes.safe_text import safe_text
from tui.report import Results, load_results
from tui.runstate import RunState
from tui.widgets.answers_view import AnswersView
from tui.widgets.artifacts_view import ArtifactsView
from tui.widgets.metrics_table import MetricsTable


def render_stage_metrics(results: Results) -> Table:
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold magenta", no_wrap=True)
    grid.add_column(style="dim")
    grid.add_column(justify="right")
    for stage, values in results.stage_metrics:
        for i, (name, value) in enumerate(values.items()):
            grid.add_row(safe_text(stage, multiline=False) if i == 0 else "",
                         safe_text(name, multiline=False), f"{value:.4g}")
    return grid


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
        width: 1fr;
    }
    ResultsScreen #artifacts-box {
        width: 1fr;
    }
    ResultsScreen #artifacts-box, ResultsScreen #metrics-box {
        height: auto;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ResultsScreen #metric-help {
        padding: 0 1;
        color: $text-muted;
        height: auto;
    }
    ResultsScreen #no-report {
        padding: 0 1;
        color: $text-muted;
        height: auto;
    }
    ResultsScreen #stages-box {
        height: auto;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
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
    # Side by side only where a metrics table with long names fits beside the run box.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (140, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("r", "reload", "Reload"),
        Binding("t", "chat", "Chat", show=False),  # written on the run box (80 columns)
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
                    yield Static("", id="metric-help")
                with Vertical(id="artifacts-box"):
                    yield ArtifactsView()
            with Vertical(id="stages-box"):
                yield Static("", id="stage-metrics")
            yield AnswersView()
        yield Footer()

    def on_mount(self) -> None:
        name = self.state.run_dir.name if self.state.run_dir else self.state.title
        self.sub_title = f"Results · {safe_text(name, multiline=False)}"
        self.query_one("#artifacts-box").border_title = "run"
        self.query_one("#artifacts-box").border_subtitle = "t chat with it"
        self.query_one("#metrics-box").border_title = "before / after"
        self.action_reload()

    def action_reload(self) -> None:
        results = load_results(self.state.run_dir, self.state)
        size = f", {results.eval_size} examples" if results.eval_size else ""
        stage = "finetune · " if results.staged else ""
        self.query_one("#metrics-box").border_title = (
            f"{stage}before / after · {results.eval_split} split{size}")
        stages_box = self.query_one("#stages-box")
        stages_box.display = bool(results.stage_metrics)
        stages_box.border_title = "what each stage measured"
        self.query_one("#stage-metrics", Static).update(render_stage_metrics(results))
        self.query_one(ArtifactsView).show(results.summary, results.artifacts, self.state.run_dir)
        note = self.query_one("#no-report", Static)
        table = self.query_one(MetricsTable)
        table.show(results.metrics)
        table.display = bool(results.metrics)
        message: Text | None = None
        if results.report_error:
            message = Text(results.report_error, style="red")
        elif not results.report_found and results.metrics:
            message = Text("figures from the run's events; no evaluation report yet "
                           "(report.json)", style="italic")
        elif not results.report_found:
            message = Text("no evaluation report yet (report.json)", style="italic")
            message.append("\nthe before/after metrics appear when the evaluation has run",
                           style="dim")
        note.update(message or "")
        note.display = message is not None
        self.query_one(AnswersView).show(results.answers)

    def action_chat(self) -> None:
        if self.state.run_dir is not None:
            self.app.open_chat(self.state.run_dir)

    def on_metrics_table_explained(self, event: MetricsTable.Explained) -> None:
        help_line = self.query_one("#metric-help", Static)
        help_line.update(Text(event.help))  # text, not markup
        help_line.display = bool(event.help)

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
