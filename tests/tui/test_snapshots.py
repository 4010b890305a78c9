"""How each screen looks at 80×24 and at 120×40 (pytest-textual-snapshot).

    PYTHONPATH=. .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update

Every screen is drawn at both sizes: 80×24 is a first-class size (an SSH session's default).
The runs are written with fixed event times (conftest.write_run) into a temporary working
directory, the driver, the device check and the fit estimate are fakes, and the catalog is the
demo alone, so the pictures change only when the UI does. Each test waits for a condition
(the device answered, the workers done), never for a fixed time.
"""

from __future__ import annotations

import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from textual.widgets import Input

from tests.tui.conftest import DRIVER_12, GPU_12, device_probe, driver_probe, write_staged_run
from tui.runstate import RunState
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen

SIZES = {"80x24": (80, 24), "120x40": (120, 40)}
FINISHED, STOPPED, FAILED = ("runs/20261121-101500-demo", "runs/20261121-103000-demo",
                             "runs/20261121-104500-demo")


async def wait_for(pilot, check, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await pilot.pause(0.05)


async def settle(pilot) -> None:
    """Wait for the device answers and the workers (fit estimates), then one more repaint."""
    app = pilot.app
    for field_input in app.screen.query(Input):
        field_input.cursor_blink = False
    # the device answers start the fit estimates again: wait for them first
    await wait_for(pilot, lambda: app.device.full and not app.device.checking, "the device")
    await pilot.pause()
    await app.workers.wait_for_complete()
    await pilot.wait_for_animation()
    await pilot.pause()


def opener(*keys: str, run: str | None = None, results: bool = False, first: tuple[str, ...] = ()):
    """Press ``first``, open ``run`` (and its results), then press ``keys``, and settle."""
    async def before(pilot) -> None:
        await pilot.pause()
        for key in first:
            await pilot.press(key)
        if run is not None:
            pilot.app.open_run(Path(run))
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, RunScreen), "the run")
        if results:
            await pilot.press("enter")
            await wait_for(pilot, lambda: isinstance(pilot.app.screen, ResultsScreen),
                           "the results")
        for key in keys:
            await pilot.press(key)
        await settle(pilot)

    return before


@pytest.fixture()
def app(make_app, past_runs):
    return make_app(device_probe=device_probe(GPU_12), driver_probe=driver_probe(DRIVER_12))


@pytest.fixture(params=list(SIZES), ids=list(SIZES))
def size(request) -> tuple[int, int]:
    return SIZES[request.param]


def test_recipes(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener())


def test_recipes_without_a_driver(snap_compare, make_app, size) -> None:
    assert snap_compare(make_app(), terminal_size=size, run_before=opener())


def test_configure(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("enter"))


def test_configure_training_tab(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size,
                        run_before=opener("enter", "ctrl+pagedown", "ctrl+pagedown"))


def test_configure_invalid_field(snap_compare, app, size) -> None:
    async def before(pilot) -> None:
        await pilot.press("enter")
        # the form focuses its first field after its first paint (which shows that field's
        # tab): wait for it, or it could switch back from the field shown below
        await wait_for(pilot, lambda: isinstance(pilot.app.focused, Input), "the first field")
        editor = await pilot.app.screen.form.show_field("learning_rate")
        editor.query_one(Input).focus()  # as a person typing there: its tab stays shown
        editor.query_one(Input).value = "fast"
        await settle(pilot)

    assert snap_compare(app, terminal_size=size, run_before=before)


def test_run_finished(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener(run=FINISHED))


def test_run_learning_rate_plot(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("p", run=FINISHED))


def test_run_samples_tab(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("e", run=FINISHED))


def test_run_failed(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener(run=FAILED))


def test_run_stopped_light_theme(snap_compare, app, size) -> None:
    # the theme first: a plot drawn before the switch repaints its canvas a frame later
    assert snap_compare(app, terminal_size=size, run_before=opener(run=STOPPED, first=("ctrl+t",)))


def test_run_empty(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("2"))


def test_run_stages(snap_compare, app, size) -> None:
    write_staged_run(Path("runs"))
    assert snap_compare(app, terminal_size=size,
                        run_before=opener("e", run="runs/20261121-110000-gemma3-scratch"))


def test_results(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener(run=FINISHED, results=True))


def test_results_stages(snap_compare, app, size) -> None:
    write_staged_run(Path("runs"))
    assert snap_compare(app, terminal_size=size, run_before=opener(
        run="runs/20261121-110000-gemma3-scratch", results=True))


def test_history(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("3", "down", "space"))


def test_compare(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size,
                        run_before=opener("3", "down", "space", "down", "space", "c"))


def test_delete_question(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("3", "d"))


def test_rename_prompt(snap_compare, app, size) -> None:
    assert snap_compare(app, terminal_size=size, run_before=opener("3", "n"))


def test_quit_with_a_run_in_progress(snap_compare, app, size) -> None:
    async def before(pilot) -> None:
        app = pilot.app
        state = RunState.from_run_dir(Path(STOPPED))
        state.begin_live()  # as if this app were driving it (its step events are there)
        app.live_state = state
        app.live = SimpleNamespace(running=False, detach=lambda: None,
                                   request_stop=lambda: None)
        await settle(pilot)
        await pilot.press("q")
        await wait_for(pilot, lambda: pilot.app.screen.query("#other"), "the quit question")
        await pilot.wait_for_animation()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=before)
