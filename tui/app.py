"""The slothlab terminal UI: pick a recipe, configure it, watch it train, compare results.

    slothlab                                  # no arguments: this app (runs in ./runs)
    python -m tui.app --runs-dir /tmp/runs    # the same, with options

Three modes, switched with 1 / 2 / 3: Recipes (then Configure), Run (the live run), History
(past runs, compare, reopen). Training runs as a `slothlab --json` subprocess read by an async
worker (tui/runner.py); this process never imports torch.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import replace
from pathlib import Path

from platformdirs import user_downloads_path
from textual.app import App, SystemCommand
from textual.binding import Binding
from textual.reactive import reactive
from textual.screen import Screen

from recipes.errors import RecipeError
from recipes.safe_text import safe_text
from recipes.schema import Recipe, dump_recipe
from tui import fit as fitmod
from tui.catalog import RecipeEntry, as_run, load_catalog
from tui.device import DeviceInfo, probe_device
from tui.driver import DriverReport, query_driver
from tui.format import short_path
from tui.messages import DeviceDetected, DriverDetected, RunEnded
from tui.questions import cpu_start_question, discard_question, quit_question, stop_question
from tui.runner import SLOTHLAB, STOP_GRACE_SECONDS, RunProcess, RunSpec
from tui.runstate import RunState
from tui.screens.confirm import OTHER, ConfirmScreen
from tui.screens.recipes import RecipesScreen

DeviceProbe = Callable[[], Awaitable[DeviceInfo]]
DriverProbe = Callable[[], Awaitable[DriverReport]]
FitEstimator = Callable[[Recipe, "float | None"], fitmod.Fit]


# The Run and History screens (and plotext) load on first use: the first paint needs Recipes.
def _run_screen() -> Screen:
    from tui.screens.run import RunScreen

    return RunScreen()


def _history_screen() -> Screen:
    from tui.screens.history import HistoryScreen

    return HistoryScreen()


def _closes_with_mode_key(screen: Screen) -> bool:
    """A view opened on top of a mode (a past run, results, a comparison): the mode's key (or
    its palette entry) closes it and shows the mode itself. Configure is not one: it has edits."""
    return bool(getattr(screen, "closes_with_mode_key", False))


def _is_run_screen(screen: Screen, fixed: bool | None = None) -> bool:
    from tui.screens.run import RunScreen

    if not isinstance(screen, RunScreen):
        return False
    return fixed is None or (screen.fixed_state is not None) == fixed


class SlothlabApp(App):
    TITLE = "slothlab"
    CSS_PATH = "app.tcss"
    MODES = {
        "recipes": RecipesScreen,
        "run": _run_screen,
        "history": _history_screen,
    }
    DEFAULT_MODE = "recipes"
    BINDINGS = [
        Binding("1", "mode('recipes')", "Recipes", show=True),
        Binding("2", "mode('run')", "Run", show=True),
        Binding("3", "mode('history')", "History", show=True),
        Binding("ctrl+t", "toggle_theme", "Light/dark", show=False),
        Binding("f1", "show_keys", "Keys", show=False),
        Binding("q", "quit", "Quit", show=True),
        Binding("ctrl+q", "quit", "Quit", show=False, priority=True),
    ]

    tiny: reactive[bool] = reactive(False)
    card: reactive[str] = reactive("auto")  # "auto" (the detected GPU's) or a size in GiB
    device: reactive[DeviceInfo] = reactive(DeviceInfo(), always_update=True)
    catalog_version: reactive[int] = reactive(0)

    def __init__(
        self,
        runs_dir: Path = Path("runs"),
        saved_dir: Path = Path("my_recipes"),
        *,
        slothlab: tuple[str, ...] = SLOTHLAB,
        device_probe: DeviceProbe | None = None,
        driver_probe: DriverProbe | None = None,
        fit_estimator: FitEstimator | None = None,
        stop_grace: float = STOP_GRACE_SECONDS,
        extra_args: list[str] | None = None,
        tiny: bool = False,
        theme: str = "textual-dark",
    ) -> None:
        super().__init__()
        self._start_theme = theme
        self.set_reactive(SlothlabApp.tiny, tiny)
        self.runs_dir = runs_dir
        self.saved_dir = saved_dir
        self.slothlab = slothlab
        self.device_probe = device_probe or (lambda: probe_device(slothlab))
        self.driver_probe = driver_probe or (lambda: asyncio.to_thread(query_driver))
        self.fit_estimator = fit_estimator or fitmod.estimate
        self.stop_grace = stop_grace
        self.extra_args = list(extra_args or [])
        self.catalog: list[RecipeEntry] = load_catalog(saved_dir)
        self.live: RunProcess | None = None
        self.live_state: RunState | None = None
        self.experiment = None  # tui.experiment_process.ExperimentProcess, while one runs
        self._quitting = False
        self._leave_running = False  # quit chosen with "leave it running": no stop on unmount

    # -- start-up ----------------------------------------------------------------------
    def on_mount(self) -> None:
        self.theme = self._start_theme
        self.detect_device()

    async def on_unmount(self) -> None:
        """Last line of defence (an exception, a test ending): no run outlives the app, unless
        the person chose to leave it running."""
        if self.live is not None and self.live.running and not self._leave_running:
            await self.live.terminate()
        if self.experiment is not None and self.experiment.running:
            await self.experiment.terminate()

    def detect_device(self) -> None:
        """Ask the driver now (a thread, under a second: the panel fills from it) and run the
        full check (a subprocess importing torch, tens of seconds) after the next paint."""
        self.device = DeviceInfo()
        self.run_worker(self._detect_driver, name="driver", group="driver", exclusive=True)
        self.call_after_refresh(self._start_full_check)

    def _start_full_check(self) -> None:
        self.device = replace(self.device, checking=True, raw={}, error="")
        self.run_worker(self._detect, name="device", group="device", exclusive=True)

    async def _detect_driver(self) -> None:
        try:
            report = await self.driver_probe()
        except Exception as exc:  # noqa: BLE001 - shown in the panel
            report = DriverReport(problem=f"driver query failed: {type(exc).__name__}: {exc}",
                                  failed=True)
        self.post_message(DriverDetected(report))

    async def _detect(self) -> None:
        try:
            info = await self.device_probe()
        except Exception as exc:  # noqa: BLE001 - shown as "full check failed (reason)"
            info = DeviceInfo(error=f"{type(exc).__name__}: {exc}")
        self.post_message(DeviceDetected(info))

    def on_driver_detected(self, message: DriverDetected) -> None:
        self.device = replace(self.device, driver=message.report)

    def on_device_detected(self, message: DeviceDetected) -> None:
        info = message.info
        self.device = replace(self.device, raw=info.raw, error=info.error, checking=False)

    def notify(self, message: str, *, title: str = "", severity="information",
               timeout: float | None = None, markup: bool = True) -> None:
        """Every notification shows control characters as escapes; ours that quote a file, a
        run or an error pass ``markup=False`` ("[/INST]" is text, not a tag)."""
        super().notify(safe_text(message), title=safe_text(title, multiline=False),
                       severity=severity, timeout=timeout, markup=markup)

    def deliver_screenshot(self, filename: str | None = None, path: str | None = None,
                           time_format: str | None = None) -> str | None:
        """The palette's Screenshot: into ~/Downloads when it exists, else the working folder
        (a lab server account often has no Downloads); the notification says where."""
        if path is None:
            downloads = user_downloads_path()
            path = str(downloads if downloads.is_dir() else Path.cwd())
        return super().deliver_screenshot(filename, path, time_format)

    # -- card size and fit -------------------------------------------------------------
    def card_gib(self) -> tuple[float | None, str]:
        """(card size in GiB, where it came from): chosen | detected, or with no size to
        check against (card "auto" and no GPU size known): none | pending | unknown."""
        if self.card != "auto":
            return float(self.card), "chosen"
        device = self.device
        if device.vram_total_gib:
            return device.vram_total_gib, "detected"
        if device.pending:
            return None, "pending"
        return None, "none" if device.known and not device.cuda else "unknown"

    def card_options(self) -> list[tuple[str, str]]:
        device = self.device
        auto = ("auto: detecting the GPU…" if device.pending
                else f"auto: detected {device.vram_total_gib:.3g} GiB" if device.vram_total_gib
                else "auto: no GPU detected" if device.known and not device.cuda
                else "auto: GPU unknown")
        return [(auto, "auto"), *((f"{n} GiB card", str(n)) for n in fitmod.CARD_SIZES_GIB)]

    def estimate_fit(self, recipe: Recipe, vram_gib: float | None) -> fitmod.Fit:
        try:
            return self.fit_estimator(recipe, vram_gib)
        except Exception as exc:  # noqa: BLE001 - a badge "?" rather than a crash
            return fitmod.Fit(reason=f"estimate failed: {exc}")

    # -- recipes -----------------------------------------------------------------------
    def reload_catalog(self) -> None:
        self.catalog = load_catalog(self.saved_dir)
        self.catalog_version += 1

    def refuse(self, entry: RecipeEntry) -> bool:
        """Say so and return True when ``entry`` cannot be configured or started now: its file
        does not load, or (in tiny mode) its tiny_overrides do not, as ``slothlab --tiny``
        refuses it."""
        error = entry.error_for(self.tiny)
        if entry.recipe is not None and not error:
            return False
        title = ("this recipe does not load in tiny mode" if entry.recipe is not None
                 else "this recipe does not load")
        self.notify((error or "fix its file first")[:300], title=title, severity="error",
                    markup=False)
        return True

    def configure(self, entry: RecipeEntry) -> None:
        from tui.screens.configure import ConfigureScreen

        if self.refuse(entry):
            return
        assert entry.recipe is not None
        # In tiny mode the form shows what a tiny run trains: the tiny overrides applied.
        self.push_screen(ConfigureScreen(entry, as_run(entry.recipe, self.tiny)))

    def save_recipe(self, recipe: Recipe, on_saved: Callable[[], None] | None = None) -> None:
        from tui.screens.save_recipe import SaveRecipeScreen

        def saved(path: Path | None) -> None:
            if path is None:
                return
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
                header = (f"# slothlab --recipe {short_path(path)}\n"
                          "# saved from the slothlab TUI; every field is listed\n")
                path.write_text(header + dump_recipe(recipe), encoding="utf-8")
            except OSError as exc:
                self.notify(str(exc), title="could not save", severity="error", markup=False)
                return
            self.notify(f"saved {short_path(path)}", title="recipe saved", markup=False)
            self.reload_catalog()
            if on_saved is not None:
                on_saved()

        default = self.saved_dir / f"{recipe.name}.yaml"
        self.push_screen(SaveRecipeScreen(default), saved)

    # -- runs --------------------------------------------------------------------------
    @property
    def run_active(self) -> bool:
        return self.live is not None and self.live_state is not None and self.live_state.live

    def start_recipe(self, entry: RecipeEntry) -> None:
        """Start a recipe from its file (s on Recipes), after the check ctrl+r in Configure
        makes: every problem is listed at once, and nothing starts while there is one."""
        from tui.validation import file_problems

        problems = file_problems(entry.path, self.tiny)
        if problems:
            self.notify("\n".join(f"• {p}" for p in problems[:12]), severity="error",
                        title=f"{entry.name}: {len(problems)} problem(s); ⏎ opens it in "
                              "Configure", timeout=15, markup=False)
            return
        if self.refuse(entry):
            return
        assert entry.recipe is not None
        self.start_new(RunSpec(recipe_path=entry.path, tiny=self.tiny),
                       tiny=self.tiny or entry.recipe.tiny,
                       tiny_spec=None if entry.tiny_error
                       else RunSpec(recipe_path=entry.path, tiny=True))

    def start_configured(self, entry: RecipeEntry, recipe: Recipe, modified: bool,
                         before: Callable[[], None] | None = None) -> None:
        """Start the form's recipe (its file when unchanged); ``before`` runs just before."""
        tiny_spec: RunSpec | None
        if modified:
            spec = RunSpec(recipe=recipe)
            try:
                tiny_spec = RunSpec(recipe=as_run(recipe, tiny=True))
            except RecipeError:  # its tiny_overrides do not load: no tiny alternative
                tiny_spec = None
        else:
            spec = RunSpec(recipe_path=entry.path, tiny=recipe.tiny)  # as the form showed it
            tiny_spec = None if entry.tiny_error else RunSpec(recipe_path=entry.path, tiny=True)
        self.start_new(spec, tiny=recipe.tiny, tiny_spec=tiny_spec, before=before)

    def start_new(self, spec: RunSpec, *, tiny: bool, tiny_spec: RunSpec | None,
                  before: Callable[[], None] | None = None) -> None:
        """Start a new run; a full (non-tiny) recipe on a machine without a CUDA GPU (or before
        the check has said) asks first, offering tiny mode instead."""
        if self.run_active:
            self.notify("a run is in progress: stop it first (2, then s)", severity="warning")
            return

        def start(chosen: RunSpec) -> None:
            if before is not None:
                before()
            self.start_run(chosen)

        device = self.device
        if tiny or not (device.pending or (device.known and not device.cuda)):
            start(spec)  # a GPU, or a failed check: the run picks its backend and says why
            return
        def answer(choice: bool | str | None) -> None:
            if choice == OTHER and tiny_spec is not None:
                start(tiny_spec)
            elif choice is True:
                start(spec)

        self.push_screen(cpu_start_question(device.pending, tiny_spec is not None), answer)

    def resume_run(self, run_dir: Path) -> None:
        from recipes.lock import holder

        state = RunState.from_run_dir(run_dir)
        pid = holder(run_dir)
        if pid is not None:  # trained by another process now: follow it instead
            self.notify(f"this run is training in another process (pid {pid}): following it",
                        severity="warning")
            self.open_run(run_dir)
            return
        if not state.resumable:
            self.notify("this run has no whole checkpoint to resume from", severity="warning")
            return
        self.notify(f"resuming from {state.resume_from}")
        self.start_run(RunSpec(resume_dir=run_dir), state)

    def start_run(self, spec: RunSpec, state: RunState | None = None) -> bool:
        if self.run_active:
            self.notify("a run is in progress: stop it first (2, then s)", severity="warning")
            return False
        spec.extra_args = [*spec.extra_args, *self.extra_args]
        state = state or RunState(run_dir=spec.resume_dir, title=spec.title)
        proc = RunProcess(spec, state, self.runs_dir, slothlab=self.slothlab,
                          grace=self.stop_grace)
        self.live, self.live_state = proc, state
        state.begin_live()  # "starting" until the process says otherwise
        self.run_worker(self._drive(proc), name="run", group="run")
        self._show_live_run()
        return True

    def _show_live_run(self) -> None:
        if _is_run_screen(self.screen, fixed=True):
            self.pop_screen()  # a reopened past run that is now resumed live: show it once
        self.switch_mode("run")
        while not _is_run_screen(self.screen) and len(self.screen_stack) > 1:
            self.pop_screen()

    async def _drive(self, proc: RunProcess) -> None:
        code = await proc.run()
        self.post_message(RunEnded(proc.state, code))

    def on_run_ended(self, message: RunEnded) -> None:
        state = message.state
        status = state.status
        name = state.run_dir.name if state.run_dir else state.title
        if status == "finished":
            self.notify(f"{name}: press ⏎ on the Run screen for results", title="run finished",
                        markup=False)
        elif status == "stopped":
            saved = getattr(state.outcome, "checkpoint", None)
            self.notify(f"{name}: " + ("checkpoint saved, r resumes" if saved else
                                       "stopped before its first step: nothing saved"),
                        title="run stopped",
                        severity="warning", markup=False)
        else:
            self.notify(f"{name}: see the Run screen for the error", title=f"run {status}",
                        severity="error", markup=False)

    def confirm_stop(self) -> None:
        if not self.run_active:
            return

        def answer(yes: bool | None) -> None:
            if yes and self.live is not None:
                self.live.request_stop()

        assert self.live_state is not None
        self.push_screen(stop_question(self.live_state), answer)

    def confirm_stop_pid(self, pid: int) -> None:
        """Stop a run this app did not start (it wrote its pid; pid_alive checked it)."""

        def answer(yes: bool | None) -> None:
            if yes:
                try:
                    os.kill(pid, signal.SIGINT)
                except OSError as exc:
                    self.notify(f"could not signal process {pid}: {exc}", severity="error",
                                markup=False)

        self.push_screen(ConfirmScreen(
            "Stop this run?",
            f"It was started outside this window (process {pid}). It finishes its step, saves "
            "a checkpoint and stops.", yes="Stop"), answer)

    def open_run(self, run_dir: Path) -> None:
        live = self.live_state
        if live is not None and live.run_dir is not None and live.run_dir.resolve() == \
                run_dir.resolve():
            self.action_mode("run")
            return
        from tui.screens.run import RunScreen

        self.push_screen(RunScreen(RunState.from_run_dir(run_dir)))

    def open_chat(self, run_dir: Path) -> None:
        """The Chat screen on a run: adapter/, or the latest checkpoint of a stopped run."""
        from recipes.rundir import ADAPTER
        from tui.screens.chat import ChatScreen

        args = ["--mode", "both"]
        if not (run_dir / ADAPTER).is_dir():
            args += ["--checkpoint", "latest"]  # a stopped run; the chat says which one, or why not
        self.push_screen(ChatScreen(run_dir, slothlab=self.slothlab, extra_args=args))

    def start_experiment(self, experiment: str, *, tiny: bool | None = None,
                         sets: list[str] | None = None, out: Path | None = None,
                         resume: bool = False, show: bool = True):
        """Start `slothlab experiment` in a subprocess (one GPU: not beside a run) and show it."""
        from tui.experiment_process import ExperimentProcess, experiment_command

        if self.run_active or (self.experiment is not None and self.experiment.running):
            self.notify("a run or experiment is in progress: stop it first", severity="warning")
            return None
        argv = experiment_command(experiment, runs_dir=self.runs_dir, sets=sets, out=out,
                                  tiny=self.tiny if tiny is None else tiny, resume=resume,
                                  slothlab=self.slothlab)
        self.experiment = ExperimentProcess([*argv, *self.extra_args], grace=self.stop_grace)
        self.run_worker(self.experiment.run(), name="experiment", group="experiment")
        if show:
            from tui.screens.experiment import ExperimentScreen

            self.push_screen(ExperimentScreen(process=self.experiment))
        return self.experiment

    def show_results(self, state: RunState) -> None:
        from tui.screens.results import ResultsScreen

        self.push_screen(ResultsScreen(state))

    # -- app actions -------------------------------------------------------------------
    def action_mode(self, mode: str) -> None:
        """Show a mode (1 / 2 / 3, or the palette): its own screen, not a view opened on it."""
        self.switch_mode(mode)
        while len(self.screen_stack) > 1 and _closes_with_mode_key(self.screen):
            self.pop_screen()

    def action_toggle_theme(self) -> None:
        self.theme = "textual-light" if self.current_theme.dark else "textual-dark"

    def action_show_keys(self) -> None:
        if self.screen.query("HelpPanel"):
            self.action_hide_help_panel()
        else:
            self.action_show_help_panel()

    def action_stop_run(self) -> None:
        self.action_mode("run")
        self.confirm_stop()

    def action_resume_last(self) -> None:
        state = self.live_state
        if state is not None and state.run_dir is not None and state.resumable:
            self.resume_run(state.run_dir)
            return
        self.notify("no stopped run to resume here; pick one in History (3)")

    async def action_quit(self) -> None:
        """q / ctrl+q: first unsaved Configure edits (as Esc asks), then a live run: stop it
        with a checkpoint, leave it running, or cancel."""
        unsaved = list(getattr(self.screen, "unsaved", None) or [])
        if unsaved and not self._quitting:

            async def discard(yes: bool | str | None) -> None:
                if yes is True:
                    await self._quit_run_question()

            self.push_screen(discard_question(unsaved), discard)
            return
        await self._quit_run_question()

    async def _quit_run_question(self) -> None:
        if not self.run_active or self._quitting:
            self.exit()
            return
        state = self.live_state
        assert state is not None

        async def answer(choice: bool | str | None) -> None:
            if self.live is None or not choice:
                return
            self._quitting = True
            if choice == OTHER:
                self._leave_running = True
                self.live.detach()
                self.exit()
                return
            saving = "saving a checkpoint" if state.step is not None else "nothing to save yet"
            self.notify(f"stopping the run ({saving})…", title="quitting")
            self.live.request_stop()
            for _ in range(int(self.stop_grace * 10) + 50):
                if not self.run_active:
                    break
                await asyncio.sleep(0.1)
            self.exit()

        self.push_screen(quit_question(state), answer)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield SystemCommand("Recipes", "Show the recipes (1)", lambda: self.action_mode("recipes"))
        yield SystemCommand("Run", "Show the current run (2)", lambda: self.action_mode("run"))
        yield SystemCommand("History", "Past runs: reopen, compare, resume (3)",
                            lambda: self.action_mode("history"))
        for entry in self.catalog:
            if entry.recipe is not None:
                yield SystemCommand(f"Start {entry.name}", f"Train {entry.name} now",
                                    lambda e=entry: self.start_recipe(e), discover=False)
                yield SystemCommand(f"Configure {entry.name}", f"Edit {entry.name} before a run",
                                    lambda e=entry: self.configure(e), discover=False)
        from recipes.experiment_spec import bundled_experiments

        for name in bundled_experiments():
            yield SystemCommand(f"Experiment {name}", f"Run {name}'s variants, one table "
                                f"({'tiny mode' if self.tiny else 'tiny mode off'})",
                                lambda n=name: self.start_experiment(n), discover=False)
        if self.run_active:
            yield SystemCommand("Stop run", "Stop gracefully (a checkpoint once a step has run)",
                                self.action_stop_run)
        yield SystemCommand("Resume run", "Resume the stopped run", self.action_resume_last)
        yield SystemCommand(f"Tiny mode {'off' if self.tiny else 'on'}",
                            "Random miniature model + sample data (CPU, offline)",
                            lambda: setattr(self, "tiny", not self.tiny))
        yield SystemCommand("Light / dark theme", "Toggle the theme (ctrl+t)",
                            self.action_toggle_theme)
        yield SystemCommand("Re-detect device", "Ask the driver again and rerun the full check "
                            "(`slothlab check --device`)",
                            self.detect_device)
        yield from super().get_system_commands(screen)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="slothlab-tui", description="The slothlab terminal UI.")
    parser.add_argument("--runs-dir", type=Path,
                        default=Path(os.environ.get("SLOTHLAB_RUNS_DIR", "runs")),
                        help="where runs are created and listed (default: ./runs, or "
                             "$SLOTHLAB_RUNS_DIR)")
    parser.add_argument("--recipes-dir", type=Path,
                        default=Path(os.environ.get("SLOTHLAB_RECIPES_DIR", "my_recipes")),
                        help="where saved recipes go and are listed from (default: ./my_recipes)")
    parser.add_argument("--tiny", action="store_true", help="start with tiny mode on")
    parser.add_argument("--light", action="store_true", help="start with the light theme")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    app = SlothlabApp(runs_dir=args.runs_dir, saved_dir=args.recipes_dir, tiny=args.tiny,
                      theme="textual-light" if args.light else "textual-dark")
    app.run()
    return 0 if app.return_code in (None, 0) else int(app.return_code)


if __name__ == "__main__":
    sys.exit(main())
