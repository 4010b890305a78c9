"""How each screen looks at a fixed size (pytest-textual-snapshot).

    .venv/bin/python -m pytest tests/tui/test_snapshots.py --snapshot-update   # new baselines

The runs are written with fixed event times (conftest.write_run) into a temporary working
directory, the device and the fit estimate are fakes, and the catalog is the demo alone, so the
pictures change only when the UI does.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input

from tests.tui.conftest import DRIVER_12, GPU_12, device_probe, driver_probe

WIDE, SMALL = (120, 40), (80, 24)
FINISHED, STOPPED, FAILED = ("runs/20261121-101500-demo", "runs/20261121-103000-demo",
                             "runs/20261121-104500-demo")


async def settle(pilot) -> None:
    """Wait for the workers (fit estimates, device probe) and one more repaint."""
    for field_input in pilot.app.screen.query(Input):
        field_input.cursor_blink = False
    for _ in range(200):  # the device answer starts the fit estimates again: wait for it first
        if not pilot.app.device.pending:
            break
        await pilot.pause(0.05)
    await pilot.pause()
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.1)


def opener(*keys: str, run: str | None = None, results: bool = False):
    async def before(pilot) -> None:
        await pilot.pause()
        if run is not None:
            pilot.app.open_run(Path(run))
            await pilot.pause()
        if results:
            await pilot.press("enter")
        if keys:
            await pilot.press(*keys)
        await settle(pilot)

    return before


@pytest.fixture()
def app(make_app, past_runs):
    return make_app(device_probe=device_probe(GPU_12), driver_probe=driver_probe(DRIVER_12))


def test_recipes(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener())


def test_recipes_small(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=SMALL, run_before=opener())


def test_configure(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener("enter"))


def test_configure_invalid_field(snap_compare, app) -> None:
    async def before(pilot) -> None:
        await pilot.pause()
        await pilot.press("enter")
        await pilot.pause()
        editor = await pilot.app.screen.form.show_field("learning_rate")
        editor.query_one(Input).value = "fast"
        await settle(pilot)

    assert snap_compare(app, terminal_size=WIDE, run_before=before)


def test_configure_small(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=SMALL, run_before=opener("enter", "ctrl+pagedown",
                                                                    "ctrl+pagedown"))


def test_run_finished(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener(run=FINISHED))


def test_run_finished_small(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=SMALL, run_before=opener(run=FINISHED))


def test_run_samples_tab(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener("e", run=FINISHED))


def test_run_failed(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener(run=FAILED))


def test_run_stopped_light_theme(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener("ctrl+t", run=STOPPED))


def test_run_empty(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=SMALL, run_before=opener("2"))


def test_results(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener(run=FINISHED, results=True))


def test_results_small(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=SMALL, run_before=opener(run=FINISHED, results=True))


def test_history(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE, run_before=opener("3", "down", "space"))


def test_compare(snap_compare, app) -> None:
    assert snap_compare(app, terminal_size=WIDE,
                        run_before=opener("3", "down", "space", "down", "space", "c"))
