"""Quitting with a run in progress, ctrl+q over unsaved edits, s on Recipes checking the whole
recipe, the fit panel while another field is invalid, and the palette's Screenshot."""

from __future__ import annotations

import gc
import os
import signal
import time
from pathlib import Path

import pytest
from textual.widgets import Button, Input

from tests.tui.conftest import write_full_recipe
from tests.tui.test_screens import fake_stream, showing, text_of, until, words
from tui.screens.configure import ConfigureScreen
from tui.screens.confirm import ConfirmScreen
from tui.validation import file_problems
from tui.widgets.fit_view import FitView

SIZE = (120, 40)


def dialog_text(app) -> str:
    return " ".join(words(w) for w in app.screen.query("Static"))


def record_notifications(app) -> list[tuple[str, str]]:
    """(title, message) of every notification the app shows from now on."""
    shown: list[tuple[str, str]] = []
    notify = app.notify

    def record(message: str, **kwargs) -> None:
        shown.append((kwargs.get("title", ""), message))
        notify(message, **kwargs)

    app.notify = record
    return shown


def kill_group(pid: int) -> None:
    try:
        os.killpg(pid, signal.SIGKILL)
    except OSError:
        pass


# -- quit with a run in progress -------------------------------------------------------------
async def test_quit_offers_stop_leave_running_and_cancel(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, rate="20", steps="100000")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")  # the demo is tiny: it starts without asking
        await until(pilot, lambda: app.live_state is not None and app.live_state.step is not None,
                    what="the first step")
        await pilot.press("q")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        labels = [str(b.label) for b in app.screen.query(Button)]
        assert labels == ["Cancel (n)", "Leave it running (l)", "Stop and quit (y)"]
        shown = dialog_text(app)
        assert "saves a checkpoint" in shown
        assert "keeps training after this window closes" in shown
        await pilot.press("n")  # cancel: nothing happens
        await until(pilot, lambda: not isinstance(app.screen, ConfirmScreen), what="cancel")
        assert app.run_active


# The run is meant to outlive the app's event loop, so its asyncio pipes cannot be closed on
# that loop: they complain when collected, which the test makes happen here, not in a later test.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_leave_it_running_quits_and_the_run_goes_on(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, rate="20", steps="100000")
    app = make_app()
    pid = 0
    try:
        async with app.run_test(size=SIZE) as pilot:
            await pilot.press("s")
            await until(pilot, lambda: app.live_state is not None
                        and app.live_state.step is not None, what="the first step")
            pid = app.live_state.started.pid
            run_dir = app.live_state.run_dir
            await pilot.press("q")
            await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
            await pilot.press("l")
        events = run_dir / "events.jsonl"
        size = events.stat().st_size
        os.kill(pid, 0)  # still there after the app exited (raises if not)
        deadline = time.monotonic() + 20
        while events.stat().st_size == size:  # and still training: its events keep coming
            assert time.monotonic() < deadline, "the run stopped writing events"
            time.sleep(0.1)
    finally:
        kill_group(pid)
        app = None  # drop the app and, with it, the detached run's pipes
        gc.collect()


async def test_before_the_first_step_quit_says_nothing_will_be_saved(make_app,
                                                                     monkeypatch) -> None:
    fake_stream(monkeypatch, rate="0.02")  # the first step 50 s away
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state is not None
                    and app.live_state.started is not None, what="the run's start")
        await pilot.press("q")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        shown = dialog_text(app)
        assert "no training step has run yet, so nothing will be saved" in shown
        assert "saves a checkpoint" not in shown
        await pilot.press("n")


# -- ctrl+q over unsaved edits ---------------------------------------------------------------
async def test_ctrl_q_in_configure_asks_about_unsaved_edits(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await until(pilot, lambda: showing(app, ConfigureScreen), what="Configure")
        editor = await app.screen.form.show_field("learning_rate")
        editor.query_one(Input).value = "0.001"
        await until(pilot, lambda: app.screen.unsaved == ["learning_rate"], what="the edit")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        assert "Quit and discard your changes?" in dialog_text(app)
        assert "learning_rate" in dialog_text(app)
        await pilot.press("n")  # keep editing
        await until(pilot, lambda: showing(app, ConfigureScreen), what="back to it")
        assert app.is_running


async def test_ctrl_q_in_configure_without_edits_quits(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await until(pilot, lambda: showing(app, ConfigureScreen), what="Configure")
        await pilot.press("ctrl+q")
        await until(pilot, lambda: not app.is_running, what="the app to exit")


# -- s on Recipes: every problem at once -----------------------------------------------------
def test_file_problems_lists_every_problem(tmp_path: Path) -> None:
    path = write_full_recipe("broken", sample_dataset="data/none.jsonl")
    text = path.read_text(encoding="utf-8")
    path.write_text(text.replace("batch_size: 4", "batch_size: -3")
                    .replace("lora_r: 16", "lora_r: many"), encoding="utf-8")
    problems = file_problems(path, tiny=False)
    assert [p.split(":")[0] for p in problems] == ["lora_r", "batch_size"]
    path = write_full_recipe("broken", sample_dataset="data/none.jsonl",
                             target_modules=["q_proj", "qkv"])
    problems = file_problems(path, tiny=True)  # tiny mode reads the missing sample file
    assert any(p.startswith("target_modules: qkv: no such layer") for p in problems)
    assert any(p.startswith("sample_dataset: no such file: data/none.jsonl") for p in problems)


async def test_s_on_recipes_lists_every_problem_and_starts_nothing(make_app) -> None:
    write_full_recipe("broken", sample_dataset="data/none.jsonl", target_modules=["q_proj", "qkv"])
    app = make_app(tiny=True)
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one("RecipeTable")
        await until(pilot, lambda: table.row_count == 2, what="the list")
        table.move_cursor(row=1)
        await pilot.press("s")
        await until(pilot, lambda: shown, what="the problems")
        title, message = shown[-1]
        assert "2 problem(s)" in title
        assert "qkv: no such layer" in message and "data/none.jsonl" in message
        assert app.live is None, "nothing started"


# -- the fit panel keeps its estimate --------------------------------------------------------
async def test_the_fit_estimate_stays_while_an_unrelated_field_is_invalid(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await until(pilot, lambda: showing(app, ConfigureScreen), what="Configure")
        fit = app.screen.query_one(FitView)
        await until(pilot, lambda: "needs" in text_of(fit), what="the estimate")
        editor = await app.screen.form.show_field("learning_rate")
        editor.query_one(Input).value = "fast"
        await until(pilot, lambda: app.screen.recipe is None, what="the invalid recipe")
        await pilot.pause(0.3)  # the estimate is debounced (0.15 s): let it run again
        await app.workers.wait_for_complete()
        assert "needs" in text_of(fit), "learning_rate does not change the memory estimate"
        editor = await app.screen.form.show_field("batch_size")
        editor.query_one(Input).value = "lots"
        await until(pilot, lambda: "fix batch_size to see the estimate" in words(fit),
                    what="the field the estimate needs")


# -- the palette's Screenshot ----------------------------------------------------------------
async def test_screenshot_goes_to_the_working_folder_without_downloads(make_app, monkeypatch,
                                                                       tmp_path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_DOWNLOAD_DIR", str(home / "Downloads"))
    monkeypatch.setattr("tui.app.user_downloads_path", lambda: home / "Downloads")
    app = make_app()
    shown = record_notifications(app)
    async with app.run_test(size=SIZE) as pilot:
        app.deliver_screenshot()
        await until(pilot, lambda: list(Path.cwd().glob("*.svg")), what="the file")
        await until(pilot, lambda: any("Saved screenshot" in m for _, m in shown),
                    what="the notice")
        message = next(m for _, m in shown if "Saved screenshot" in m)
        assert str(Path.cwd()) in message


if __name__ == "__main__":  # pragma: no cover
    pytest.main([__file__, "-q"])


async def test_the_form_marks_target_modules_the_model_lacks(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("enter")
        await until(pilot, lambda: showing(app, ConfigureScreen), what="Configure")
        editor = await app.screen.form.show_field("target_modules")
        editor.query_one(Input).value = "q_proj, qkv"
        await until(pilot, lambda: any("qkv: no such layer" in e for e in app.screen.errors),
                    what="the problem")
        error = next(e for e in app.screen.errors if "qkv" in e)
        assert "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj" in error
        assert "qkv: no such layer" in editor.error, "shown on the field itself"
        assert "✗" in str(app.screen.form.query_one("TabbedContent").get_tab("tab-lora").label)
