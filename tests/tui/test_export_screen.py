"""The Export action on Results: a `slothlab export --json` subprocess (a fake one here)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from textual.widgets import ProgressBar, Select

from tests.tui.test_screens import SIZE, shows, text_of, until
from tui.screens.export import ExportScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen

ROOT = Path(__file__).resolve().parents[2]


async def _open_export(app, pilot, run_dir: Path) -> ExportScreen:
    app.open_run(run_dir)
    await until(pilot, lambda: isinstance(app.screen, RunScreen))
    await pilot.pause(0.1)
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
    await pilot.pause(0.1)
    await pilot.press("e")
    await until(pilot, lambda: isinstance(app.screen, ExportScreen))
    await pilot.pause(0.1)
    return app.screen


async def test_results_offer_export_in_the_footer(make_app, past_runs) -> None:
    """At 80 columns too, and Quit stays visible beside it."""
    from textual.widgets._footer import FooterKey

    def keys() -> dict:
        return {k.key: k for k in app.screen.query(FooterKey) if k.region.width}

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        app.open_run(past_runs["finished"])
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await until(pilot, lambda: "e" in keys() and "q" in keys() and "ctrl+p" in keys(),
                    what="the Results footer")
        assert keys()["e"].description == "Export"
        assert keys()["q"].region.right <= keys()["ctrl+p"].region.x


async def test_export_to_ollama_shows_progress_and_the_next_command(make_app, past_runs,
                                                                   monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT", "slow")
    run_dir = past_runs["finished"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_export(app, pilot, run_dir)
        screen.query_one("#target", Select).value = "ollama"
        await pilot.pause(0.1)
        assert screen.query_one("#dtype", Select).value == "q8_0", "Ollama's default type"
        await pilot.press("ctrl+e")
        bar = screen.query_one("#export-bar", ProgressBar)
        await until(pilot, lambda: 0 < bar.progress < bar.total, what="progress under way")
        assert bar.content_region.height == 1, "the bar has a row to draw in"
        assert "convert" in text_of(screen.query_one("#export-stage"))
        await until(pilot, lambda: screen.outcome is not None, timeout=45)
        await until(pilot, lambda: not screen.running)
        await shows(pilot, screen.query_one("#export-result"), "exported", "demo-q8_0.gguf",
                    "ollama create demo -f", "ollama run demo")
        out = run_dir / "export" / "ollama-q8_0"
        args = json.loads((out / "args.json").read_text())
        assert args == [str(run_dir), "--to", "ollama", "--dtype", "q8_0", "--json"]
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))


async def test_a_refused_export_shows_what_and_the_fix(make_app, past_runs,
                                                       monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT", "fail")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_export(app, pilot, past_runs["finished"])
        await pilot.press("ctrl+e")
        await until(pilot, lambda: screen.outcome is not None and not screen.running)
        await shows(pilot, screen.query_one("#export-result"), "no final adapter", "--checkpoint")
        assert text_of(screen.query_one("#export-stage")).strip() == "refused"


async def test_a_crashing_export_leaves_the_app_up(make_app, past_runs, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT", "crash")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_export(app, pilot, past_runs["finished"])
        await pilot.press("ctrl+e")
        await until(pilot, lambda: screen.process is not None and not screen.running
                    and "code" in text_of(screen.query_one("#export-result")))
        result = text_of(screen.query_one("#export-result"))
        assert "exited with code 1" in result and "OOM killer" in result
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))


async def test_esc_stops_a_running_export(make_app, past_runs, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_EXPORT", "hang")
    run_dir = past_runs["finished"]
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await _open_export(app, pilot, run_dir)
        await pilot.press("ctrl+e")
        bar = screen.query_one("#export-bar", ProgressBar)
        await until(pilot, lambda: bar.progress >= 1, what="the export started")
        await pilot.press("escape")
        await until(pilot, lambda: not screen.running, timeout=45)
        assert "stopped: nothing was written" in text_of(screen.query_one("#export-stage"))
        assert not (run_dir / "export").exists()
        assert isinstance(app.screen, ExportScreen), "the first Esc stops, it does not close"


def test_the_export_screen_never_imports_torch() -> None:
    code = ("import sys, tui.screens.export, tui.screens.results, tui.export; "
            "assert 'torch' not in sys.modules and 'transformers' not in sys.modules, "
            "sorted(m for m in sys.modules if m.split('.')[0] in ('torch', 'transformers'))")
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)


async def test_an_export_that_ignores_sigint_is_killed_after_the_grace_period() -> None:
    """A stop never hangs the screen: SIGINT first, SIGKILL of the group after the grace."""
    import asyncio
    import time

    from tui.export_process import ExportProcess

    script = ("import json, signal, time; signal.signal(signal.SIGINT, signal.SIG_IGN); "
              "print(json.dumps({'type': 'export_started'}), flush=True); time.sleep(60)")
    started = asyncio.Event()
    process = ExportProcess([sys.executable, "-c", script], lambda m: started.set(), grace=0.5)
    task = asyncio.create_task(process.run())
    await asyncio.wait_for(started.wait(), 30)
    began = time.monotonic()
    process.stop()
    code = await asyncio.wait_for(task, 30)
    assert code == -9, "killed, not exited"
    assert time.monotonic() - began < 10, "the kill came after the grace period, not the sleep"
