"""Run: progress and ETA, loss plot, the latest numbers, memory, the log and greedy samples.

The reader worker only folds events into a RunState; this screen redraws from it on a timer
(``REDRAW_SECONDS``), in one batch, and rebuilds the plot at most every ``PLOT_SECONDS``. A
stream of hundreds of events a second therefore costs a handful of repaints.

Two uses: the app's live run (``RunScreen()``: whatever run the app is driving now), and a
past run reopened from History (``RunScreen(state)``), which follows its events.jsonl while
its process (started elsewhere) is still running. A reopened run is a view on top of History:
Esc (or 3) goes back to the list.
"""

from __future__ import annotations

import time

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Footer, Header, Static, TabbedContent, TabPane

from recipes import events as ev
from recipes.rundir import EVENTS_FILE
from recipes.safe_text import safe_text
from tui.runstate import RunState
from tui.widgets.error_panel import ErrorPanel
from tui.widgets.loss_plot import Curve, LossPlot
from tui.widgets.memory_gauge import MemoryGauge
from tui.widgets.run_log import RunLog
from tui.widgets.run_progress import RunProgress
from tui.widgets.run_stats import STATUS_STYLE, RunSetup, RunStats
from tui.widgets.samples_view import SamplesView

REDRAW_SECONDS = 0.2
PLOT_SECONDS = 0.5
TAIL_SECONDS = 0.5

HINTS = {
    "running": "s stops (a checkpoint is saved)",
    "stopping": "stopping: finishing the step and saving a checkpoint…",
    "finished": "⏎ results",
    "stopped": "r resumes from the checkpoint · ⏎ results so far",
    "failed": "the error and what to do are below",
    "interrupted": "the process ended without a final event",
}


class RunScreen(Screen):
    SUB_TITLE = "Run"
    DEFAULT_CSS = """
    RunScreen #banner {
        height: 1;
        padding: 0 1;
        background: $boost;
    }
    RunScreen #empty {
        display: none;
        height: 1fr;
        content-align: center middle;
        color: $text-muted;
    }
    RunScreen.-empty #empty {
        display: block;
    }
    RunScreen.-empty #run-body {
        display: none;
    }
    RunScreen #run-body {
        height: 1fr;
    }
    RunScreen #middle {
        height: 1fr;
        min-height: 11;
    }
    RunScreen #side {
        width: 36;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    RunScreen #bottom {
        height: 40%;
        min-height: 7;
    }
    RunScreen TabPane {
        padding: 0;
    }
    RunScreen.-narrow #side {
        width: 28;
    }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (100, "-wide")]
    BINDINGS = [
        Binding("escape", "back", "Back"),
        Binding("s", "stop", "Stop"),
        Binding("r", "resume", "Resume"),
        Binding("enter", "results", "Results"),
        # l and e are written on their tabs: out of the footer, which keeps room for q Quit.
        Binding("l", "tab('log')", "Log", show=False),
        Binding("e", "tab('samples')", "Samples", show=False),
        # p, y and v are written under the plot.
        Binding("p", "next_plot", "Plot", show=False),
        Binding("y", "log_scale", "Log scale", show=False),
        Binding("v", "next_stage", "Stage", show=False),
    ]

    def __init__(self, state: RunState | None = None) -> None:
        super().__init__()
        self.fixed_state = state  # None: follow the app's live run
        self.closes_with_mode_key = state is not None  # see SlothlabApp.action_mode
        self._drawn_state: RunState | None = None
        self._drawn_version = -1
        self._plot_version: tuple = ()
        self._plot_time = 0.0
        self._status: tuple[str, bool] = ("", False)
        self._tail_offset = 0
        self._samples_key: tuple = ()
        self._started: object = None
        self.plot_kind = "loss"  # loss | lr | grad (PLOTS)
        self.shown_stage: str | None = None  # None: follow the stage that is training

    @property
    def state(self) -> RunState | None:
        return self.fixed_state if self.fixed_state is not None else self.app.live_state

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(
            "No run yet.\n\nPick a recipe (1) and press s to start it, "
            "or reopen a past run from History (3).", id="empty")
        with VerticalScroll(id="run-body"):  # at 80×24 with an error shown, it scrolls
            yield Static("", id="banner")
            yield RunProgress()
            yield ErrorPanel()
            with Horizontal(id="middle"):
                yield LossPlot("loss")
                with VerticalScroll(id="side"):
                    yield RunStats()
                    yield MemoryGauge()
                    yield RunSetup()
            with TabbedContent(id="bottom", initial="log"):
                with TabPane("Log (l)", id="log"):
                    yield RunLog()
                with TabPane("Samples (e)", id="samples"):
                    yield SamplesView()
        yield Footer()

    def on_mount(self) -> None:
        self.query_one("#side").border_title = "now"
        self.redraw()
        self.set_interval(REDRAW_SECONDS, self.redraw)
        state = self.fixed_state
        if state is not None and not state.terminal and state.run_dir is not None:
            self._tail_offset = (state.run_dir / EVENTS_FILE).stat().st_size
            self.set_interval(TAIL_SECONDS, self._tail)

    def on_screen_resume(self) -> None:
        self.redraw(force=True)

    # -- drawing -----------------------------------------------------------------------
    def redraw(self, force: bool = False) -> None:
        state = self.state
        self.set_class(state is None, "-empty")
        if state is None:
            self.sub_title = "Run"
            return
        changed = state is not self._drawn_state or state.version != self._drawn_version
        if not (changed or force or state.live):
            return
        new_state = state is not self._drawn_state
        with self.app.batch_update():
            self._draw(state, changed or force, new_state)
        self._drawn_state, self._drawn_version = state, state.version

    def _draw(self, state: RunState, changed: bool, new_state: bool) -> None:
        status = state.status
        self.query_one(RunProgress).show(state)  # elapsed time moves even without events
        if not changed:
            return
        name = safe_text(state.run_dir.name if state.run_dir else state.title, multiline=False)
        self.sub_title = f"Run · {name}"
        banner = Text()
        banner.append(f" {status} ", style=f"reverse {STATUS_STYLE.get(status, '')}")
        started = state.started
        title = started.recipe if started else state.title
        banner.append(f"  {safe_text(title, multiline=False)}", style="bold")
        if started and started.tiny:
            banner.append(" (tiny)", style="dim")
        hint = state.phase if status == "starting" else HINTS.get(status, "")
        if status == "stopping" and state.step is None:  # never promise a checkpoint
            hint = "stopping before the first step: nothing to save"
        if self.followed:
            hint = "started outside this window; following its events.jsonl · s stops it"
        banner.append(f"  · {hint}", style="dim")
        self.query_one("#banner", Static).update(banner)
        error = state.error_text
        kept = error is not None and state.run_dir is not None and state.run_dir.is_dir()
        self.query_one(ErrorPanel).show(error, kept)
        self.query_one(RunStats).show(state)
        if new_state or state.started is not self._started:
            self._started = state.started
            self.query_one(RunSetup).show(state)
        self.query_one(MemoryGauge).show(state.memory)
        self.query_one(RunLog).sync(state)
        samples_key = tuple((stage, step) for stage, (step, _) in state.stage_samples.items())
        if new_state or samples_key != self._samples_key:
            self._samples_key = samples_key
            self.query_one(SamplesView).show_stages(state.stage_samples)
        tab = self.query_one(TabbedContent).get_tab("samples")
        label = f"Samples @{state.samples_step} (e)" if state.samples else "Samples (e)"
        if str(tab.label) != label:
            tab.label = label
        now = time.monotonic()
        plot_version = (state.stage, state.train_loss.count, state.eval_loss.count)
        if new_state or (plot_version != self._plot_version
                         and (now - self._plot_time >= PLOT_SECONDS or state.terminal)):
            self._plot_version, self._plot_time = plot_version, now
            self._draw_plot(state)
        if (status, state.live) != self._status:
            self._status = (status, state.live)
            self.refresh_bindings()

    def _draw_plot(self, state: RunState) -> None:
        plot = self.query_one(LossPlot)
        stage = self.shown_stage if self.shown_stage in state.series else state.stage
        stages = state.stages
        plot.border_title = plot_title(self.plot_kind, stage if len(stages) > 1 else "")
        keys = ["p plot", "y log"] + (["v stage"] if len(stages) > 1 else [])
        plot.border_subtitle = " · ".join(keys)
        plot.set_curves(curves_for(state, self.plot_kind, stage))

    # -- following a run started elsewhere ---------------------------------------------
    @property
    def followed(self) -> bool:
        """A run this app did not start, still running (headless, or another window)."""
        state = self.state
        return bool(state is not None and not state.live and state.outcome is None
                    and state.status == "running")

    def _tail(self) -> None:
        state = self.fixed_state
        if state is None or state.run_dir is None or state.terminal:
            return
        path = state.run_dir / EVENTS_FILE
        try:
            with open(path, "rb") as fh:
                fh.seek(self._tail_offset)
                data = fh.read()
        except OSError:
            return
        end = data.rfind(b"\n") + 1  # leave a torn last line for the next read
        self._tail_offset += end
        for line in data[:end].decode("utf-8", "replace").splitlines():
            if line.strip():
                try:
                    state.apply(ev.parse_event(line))
                except (ValueError, TypeError):
                    continue
        if not end:
            state.version += 1  # the status may change when the process dies

    # -- actions -----------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        state = self.state
        if action == "back":
            return self.fixed_state is not None
        if action == "stop":
            return bool(state and state.live and self.app.live_state is state
                        and state.status in ("starting", "running")) or self.followed
        if action == "resume":
            return bool(state and not state.live and state.resumable)
        if action == "results":
            return bool(state and state.status in ("finished", "stopped", "failed", "interrupted"))
        if action in ("tab", "next_plot", "log_scale"):
            return state is not None
        if action == "next_stage":
            return state is not None and len(state.stages) > 1
        return True

    def action_back(self) -> None:
        self.app.pop_screen()

    def action_stop(self) -> None:
        if self.followed and self.state is not None and self.state.started is not None:
            self.app.confirm_stop_pid(self.state.started.pid)
        else:
            self.app.confirm_stop()

    def action_resume(self) -> None:
        state = self.state
        if state is not None and state.run_dir is not None:
            self.app.resume_run(state.run_dir)

    def action_results(self) -> None:
        state = self.state
        if state is not None:
            self.app.show_results(state)

    def action_tab(self, tab: str) -> None:
        self.query_one(TabbedContent).active = tab

    def action_next_plot(self) -> None:
        kinds = list(PLOTS)
        self.plot_kind = kinds[(kinds.index(self.plot_kind) + 1) % len(kinds)]
        if self.state is not None:
            self._draw_plot(self.state)

    def action_log_scale(self) -> None:
        on = self.query_one(LossPlot).toggle_log()
        self.notify(f"log scale {'on' if on else 'off'}", timeout=2)

    def action_next_stage(self) -> None:
        state = self.state
        if state is None or len(state.stages) < 2:
            return
        stages = state.stages
        current = self.shown_stage if self.shown_stage in stages else state.stage
        self.shown_stage = stages[(stages.index(current) + 1) % len(stages)]
        self._draw_plot(state)


PLOTS = {"loss": "loss", "lr": "lr", "grad": "grad norm"}


def plot_title(kind: str, stage: str = "") -> str:
    """The plot's border title: the plots as tabs, the shown one highlighted; the stage."""
    tabs = "  ".join(f"[reverse] {label} [/]" if key == kind else label
                     for key, label in PLOTS.items())
    return f"{tabs}  · stage {stage}" if stage else tabs


def curves_for(state: RunState, kind: str = "loss", stage: str | None = None) -> list[Curve]:
    """The curves of one plot (loss: train and eval; lr; grad) for one stage (the current)."""
    stage = state.stage if stage is None or stage not in state.series else stage
    prefix = f"{stage} " if stage else ""
    if kind == "lr":
        xs, ys = state.schedule[stage][0].points()
        return [Curve(f"{prefix}learning rate", xs, ys)]
    if kind == "grad":
        xs, ys = state.schedule[stage][1].points()
        return [Curve(f"{prefix}grad norm", xs, ys)]
    train, evals = state.series[stage]
    xs, ys = train.points()
    curves = [Curve(f"{prefix}train", xs, ys)]
    exs, eys = evals.points()
    if exs:
        curves.append(Curve(f"{prefix}eval", exs, eys, marker="braille" if len(exs) > 1 else "dot"))
    return curves
