"""The TUI driving a real tiny-mode run on the CPU: configure, start, see steps, stop, resume,
results, then a chat with what it trained. The only test here that trains (about 30-60 s on
two cores)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from textual.widgets import Input

from recipes.rundir import latest_checkpoint
from tests.tui.conftest import CPU_ONLY, device_probe, fake_fit
from tui.app import SlothlabApp
from tui.screens.chat import ChatScreen
from tui.screens.configure import ConfigureScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen

pytestmark = pytest.mark.slow


async def until(pilot, check, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
        await pilot.pause(0.1)


async def set_field(screen: ConfigureScreen, pilot, name: str, value: str) -> None:
    editor = await screen.form.show_field(name)
    editor.query_one(Input).value = value
    await pilot.pause()


async def test_real_tiny_run_stop_resume_results() -> None:
    app = SlothlabApp(runs_dir=Path("runs"), saved_dir=Path("my_recipes"),
                      device_probe=device_probe(CPU_ONLY), fit_estimator=fake_fit)
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ConfigureScreen), 10, "Configure")
        screen = app.screen
        for name, value in (("max_steps", "12"), ("logging_steps", "1"), ("eval_steps", "0"),
                            ("save_steps", "100"), ("eval_samples", "0"),
                            ("eval_prompts", "0")):
            await set_field(screen, pilot, name, value)
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, RunScreen), 10, "the Run screen")
        state = app.live_state
        await until(pilot, lambda: state.current_step >= 1 or state.terminal, 120, "a step")
        assert state.status == "running", state.error or list(state.stderr)[-5:]
        assert state.started.backend == "reference" and state.started.tiny

        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), 5, "the question")
        await pilot.press("y")
        await until(pilot, lambda: not state.live, 60, "the stop")
        assert state.status == "stopped" and state.exit_code == 130
        assert latest_checkpoint(state.run_dir) is not None
        stopped_at = state.current_step
        assert stopped_at < 12

        await pilot.pause(0.3)
        await pilot.press("r")
        await until(pilot, lambda: app.live_state is not state, 5, "the resume")
        resumed = app.live_state
        await until(pilot, lambda: not resumed.live, 180, "the resumed run to end")
        assert resumed.status == "finished", resumed.error or list(resumed.stderr)[-5:]
        assert resumed.started.resumed_from_step == stopped_at
        assert resumed.run_dir == state.run_dir and resumed.current_step == 12

        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "Results")
        adapter = resumed.run_dir / "adapter"
        assert (adapter / "adapter_config.json").is_file()
        shown = "\n".join(s.text for s in app.screen.query_one("ArtifactsView").render_lines(
            app.screen.query_one("ArtifactsView").region.reset_offset))
        assert "final train loss" in shown and "adapter" in shown

        # Chat with what was trained: the real `slothlab chat --json` in its own process.
        await pilot.press("t")
        await until(pilot, lambda: isinstance(app.screen, ChatScreen), 5, "the Chat screen")
        chat = app.screen
        await until(pilot, lambda: chat.ready or chat.failed, 120, "the chat to load")
        assert not chat.failed, list(chat.process.stderr)[-5:]
        assert chat.ready["loaded"]["weights"] == "4-bit nf4"
        chat.query_one("#prompt", Input).value = "What is 2 plus 2?"
        await pilot.press("enter")
        tuned = chat.query_one("#pane-tuned")
        await until(pilot, lambda: len(tuned.children) >= 2 and not chat.answering, 120,
                    "the question and both answers")
        assert not chat.failed and "What is 2 plus 2?" in str(tuned.children[0].render())
        process = chat.process
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen), 5, "back to Results")
        await until(pilot, lambda: not process.running, 10, "the chat process to end")
