"""Each screen's behaviour, driven with Pilot and the fake `slothlab` event stream."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input

from recipes.events import Step
from recipes.schema import load_recipe
from tests.tui.conftest import device_probe
from tui.screens.compare import CompareScreen
from tui.screens.configure import ConfigureScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.widgets.device_panel import DevicePanel
from tui.widgets.error_panel import ErrorPanel
from tui.widgets.field_editor import FieldEditor
from tui.widgets.fit_view import FitView
from tui.widgets.metrics_table import MetricsTable
from tui.widgets.recipe_table import RecipeTable
from tui.widgets.runs_table import RunsTable

SIZE = (120, 40)


async def until(pilot: Pilot, check: Callable[[], object], timeout: float = 15.0,
                what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what or check}")
        await pilot.pause(0.05)


def text_of(widget) -> str:
    """The plain text a widget shows now."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


def fake_stream(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(f"FAKE_{key.upper()}", value)


# -- Recipes ---------------------------------------------------------------------------------
async def test_recipes_lists_the_demo_with_its_fit_and_the_device(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(RecipeTable)
        await until(pilot, lambda: "fits" in str(table.get_row_at(0)), what="fit badge")
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0] == "demo" and row[1] == "fits" and row[2] == "1.9 GiB"
        assert row[3] == "chat" and "(tiny)" in row[4] and row[5].startswith("demo_qa")
        assert app.focused is table, "the list has focus first"
        await until(pilot, lambda: "CPU only" in text_of(app.screen.query_one(DevicePanel)))
        assert "reference" in text_of(app.screen.query_one(DevicePanel))
        assert "8 GiB card (no GPU detected)" in text_of(app.screen.query_one(FitView))


async def test_a_failing_device_check_is_shown_not_raised(make_app) -> None:
    app = make_app(device_probe=device_probe(error="ModuleNotFoundError: no kernels_check.cli"))
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one(DevicePanel)
        await until(pilot, lambda: "device: unknown" in text_of(panel))
        assert "kernels_check.cli" in text_of(panel)


async def test_a_detected_gpu_sets_the_card_size(make_app) -> None:
    from tests.tui.conftest import GPU_12

    app = make_app(device_probe=device_probe(GPU_12))
    async with app.run_test(size=SIZE) as pilot:
        fit = app.screen.query_one(FitView)
        await until(pilot, lambda: "12 GiB card (detected)" in text_of(fit))
        assert "RTX 3060" in text_of(app.screen.query_one(DevicePanel))


async def test_card_size_and_tiny_mode_are_one_key_away(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")  # opens the card select
        await pilot.press("down", "enter")  # the first size: 6 GiB
        await until(pilot, lambda: app.card == "6")
        await until(pilot, lambda: "6 GiB card" in text_of(app.screen.query_one(FitView)))
        assert not app.tiny
        app.screen.query_one(RecipeTable).focus()
        await pilot.press("t")
        assert app.tiny and app.screen.query_one("#tiny", Checkbox).value


# -- Configure -------------------------------------------------------------------------------
async def open_configure(app, pilot: Pilot) -> ConfigureScreen:
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ConfigureScreen))
    await pilot.pause(0.1)
    return app.screen


async def type_into(pilot: Pilot, screen: ConfigureScreen, field: str, text: str,
                    keys: bool = False) -> FieldEditor:
    """Replace a field's text: key by key, or at once (the same Input.Changed path, faster)."""
    editor = await screen.form.show_field(field)
    field_input = editor.query_one(Input)
    field_input.focus()
    field_input.value = ""
    if keys:
        await pilot.press(*text)
    else:
        field_input.value = text
    await pilot.pause()
    return editor


async def test_the_form_has_every_schema_field(make_app) -> None:
    from recipes.schema import describe_fields

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        every = {f["name"] for f in describe_fields()}
        assert set(screen.form.values) == every
        for name in every:
            await screen.form.show_field(name)
        assert {e.name_ for e in screen.form.editors} == every
        editor = await screen.form.show_field("lora_r")
        assert str(editor.query_one(".bounds").render()) == "[1, 1024]"
        assert "LoRA rank" in str(editor.query_one(".help").render())


async def test_the_form_validates_as_you_type_and_refuses_to_start(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        editor = await type_into(pilot, screen, "learning_rate", "fast", keys=True)
        assert editor.has_class("-invalid") and "expected a number" in editor.error
        editor = await type_into(pilot, screen, "lora_r", "0")
        assert "out of range, must be >= 1" in editor.error
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfigureScreen) and app.live_state is None
        await until(pilot, lambda: "2 problem(s)" in text_of(screen.query_one("#status")))
        await type_into(pilot, screen, "learning_rate", "1e-3")
        await type_into(pilot, screen, "lora_r", "8")
        await until(pilot, lambda: screen.recipe is not None, what="revalidation")
        assert screen.recipe.learning_rate == 1e-3 and screen.recipe.lora_r == 8
        assert screen.form.modified == ["lora_r", "learning_rate"]


async def test_a_cross_field_rule_is_reported(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "val_fraction", "0.45")
        await type_into(pilot, screen, "test_fraction", "0.45")
        await until(pilot, lambda: "leaves almost nothing" in " ".join(screen.errors))
        assert screen.recipe is None


async def test_the_fit_estimate_follows_the_form(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        fit = screen.query_one(FitView)
        await until(pilot, lambda: "fits" in text_of(fit))
        await type_into(pilot, screen, "batch_size", "64")
        await until(pilot, lambda: "does not fit" in text_of(fit), what="live fit")
        assert "lower batch_size" in text_of(fit)


async def test_save_as_a_new_recipe(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "name", "mine")
        await type_into(pilot, screen, "lora_r", "8")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        await pilot.press("enter")  # accept the proposed path
        await until(pilot, lambda: Path("my_recipes/mine.yaml").is_file())
        saved = load_recipe(Path("my_recipes/mine.yaml"))
        assert saved.name == "mine" and saved.lora_r == 8
        assert [e.name for e in app.catalog] == ["demo", "mine"]


async def test_start_from_the_form_runs_the_edited_recipe(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="10")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "name", "edited")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await until(pilot, lambda: app.live_state.status == "finished")
        assert app.live_state.run_dir.name.endswith("-edited")


# -- Run -------------------------------------------------------------------------------------
async def test_run_start_stop_resume_results(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="100", eval_every="5")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        state = app.live_state
        await until(pilot, lambda: state.current_step >= 6, what="steps arriving")
        screen = app.screen
        await pilot.pause(0.3)  # one redraw
        assert "step" in text_of(screen.query_one("#progress-text"))
        assert "RAM" in text_of(screen.query_one("MemoryGauge"))
        assert "Samples @" in str(screen.query_one("TabbedContent").get_tab("samples").label)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: state.status == "stopped", what="stopped")
        assert state.resumable
        monkeypatch.setenv("FAKE_STEPS", str(state.current_step + 5))
        await pilot.pause(0.3)
        await pilot.press("r")
        await until(pilot, lambda: app.live_state is not state)
        resumed = app.live_state
        await until(pilot, lambda: resumed.status == "finished", what="finished")
        assert resumed.run_dir == state.run_dir
        assert resumed.train_loss.points()[0][0] == 1, "the history before the stop is kept"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        table = app.screen.query_one(MetricsTable)
        assert table.row_count == 2  # rouge_l and exact_match from the metrics events
        assert "no evaluation report yet" in text_of(app.screen.query_one("#no-report"))


async def test_a_failed_run_shows_the_error_and_the_app_stays_up(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, mode="fail")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state and app.live_state.status == "failed")
        await pilot.pause(0.3)
        panel = app.screen.query_one(ErrorPanel)
        assert panel.display
        assert "CUDA out of memory" in text_of(panel) and "lower batch_size" in text_of(panel)
        assert (app.live_state.run_dir / "events.jsonl").is_file()
        await pilot.press("1")  # still usable
        assert app.current_mode == "recipes"


async def test_refused_input_shows_the_cli_error(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, mode="bad")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state and app.live_state.status == "failed")
        await pilot.pause(0.3)
        assert "expected a number" in text_of(app.screen.query_one(ErrorPanel))


async def test_only_one_run_at_a_time(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="50")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state.current_step > 0)
        first = app.live_state
        await pilot.press("1", "s")
        assert app.live_state is first
        app.live.request_stop()
        await until(pilot, lambda: first.status == "stopped")


async def test_quit_with_a_run_asks_then_stops_it(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="50")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        state = app.live_state
        await until(pilot, lambda: state.current_step > 0)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert state.live
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="app exit")
    assert state.status == "stopped"


# -- History ---------------------------------------------------------------------------------
async def test_history_lists_runs_and_compares_them(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 3)
        statuses = [str(table.get_row_at(i)[3]) for i in range(3)]
        assert statuses == ["failed", "stopped", "finished"]
        await pilot.press("c")  # fewer than two marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "space", "down", "space", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [r.name for r in app.screen.runs] == ["20261121-103000-demo",
                                                     "20261121-101500-demo"]
        await pilot.press("escape")
        await pilot.press("up", "up", "enter")  # the failed run
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause(0.3)
        assert "CUDA out of memory" in text_of(app.screen.query_one(ErrorPanel))


async def test_history_resumes_a_stopped_run(make_app, past_runs, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="130")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "down", "r")
        await until(pilot, lambda: app.live_state is not None)
        assert app.live_state.run_dir == past_runs["stopped"]
        await until(pilot, lambda: app.live_state.status == "finished")
        assert app.live_state.started.resumed_from_step == 120
        assert app.current_mode == "run"


async def test_a_running_run_is_followed(make_app, past_runs, monkeypatch) -> None:
    from tests.tui.conftest import write_run

    run = write_run(Path("runs"), "20261121-110000-demo", steps=300, until=50, outcome="none")
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 4)
        assert str(table.get_row_at(0)[3]) == "running"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        state = app.screen.state
        with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(Step(step=55, total_steps=300, epoch=2.0, loss=1.5, learning_rate=1e-3,
                          grad_norm=1.0, tokens_per_second=7000.0).to_json() + "\n")
        await until(pilot, lambda: state.current_step == 55, what="tail")


# -- App-wide --------------------------------------------------------------------------------
async def test_theme_toggle(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.current_theme.dark
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark


async def test_command_palette_has_the_main_actions(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Recipes", "Run", "History", "Start demo", "Configure demo", "Resume run",
                      "Light / dark theme", "Tiny mode on"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"History")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "history")


async def test_footer_keys_per_screen(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        keys = set(app.screen.active_bindings)
        assert {"enter", "s", "t", "c", "1", "2", "3", "q"} <= keys
        await pilot.press("3")
        await pilot.pause(0.1)
        assert {"enter", "space", "c", "f5"} <= set(app.screen.active_bindings)


async def test_runs_dir_option(tmp_path: Path) -> None:
    from tui.app import build_parser

    args = build_parser().parse_args(["--runs-dir", str(tmp_path / "elsewhere"), "--tiny"])
    assert args.runs_dir == tmp_path / "elsewhere" and args.tiny


def test_no_test_leaves_a_process_behind() -> None:
    """The fake runs are children of this process; none may outlive its test."""
    import os

    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        assert children.read_text().strip() == ""
