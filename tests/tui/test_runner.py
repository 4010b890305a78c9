"""The subprocess runner against the fake `slothlab`: finish, stop, refuse, crash, hang."""

from __future__ import annotations

import asyncio
from pathlib import Path

from recipes.registry import bundled
from recipes.rundir import latest_checkpoint
from recipes.schema import load_recipe
from tests.tui.conftest import FAKE_SLOTHLAB
from tui.runner import RunProcess, RunSpec, command
from tui.runstate import RunState

DEMO = bundled()["demo"]


def run(spec: RunSpec, *, grace: float = 5.0, stop_after: int | None = None) -> tuple[int, RunState]:
    state = RunState()
    proc = RunProcess(spec, state, Path("runs"), slothlab=FAKE_SLOTHLAB, grace=grace)

    async def main() -> int:
        task = asyncio.ensure_future(proc.run())
        if stop_after is not None:
            while state.current_step < stop_after and not task.done():
                await asyncio.sleep(0.01)
            proc.request_stop()
        return await asyncio.wait_for(task, 30)

    return asyncio.run(main()), state


def test_command_lines() -> None:
    spec = RunSpec(recipe_path=DEMO, tiny=True)
    argv = command(spec, Path("runs"), DEMO, ("slothlab",))
    assert argv == ["slothlab", "--recipe", str(DEMO), "--json", "--runs-dir", "runs", "--tiny"]
    resume = command(RunSpec(resume_dir=Path("runs/x")), Path("runs"), None, ("slothlab",))
    assert resume == ["slothlab", "--resume", "runs/x", "--json"]


def test_a_run_streams_to_the_end(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STEPS", "20")
    code, state = run(RunSpec(recipe_path=DEMO))
    assert code == 0 and state.status == "finished"
    assert state.current_step == 20 and len(state.train_loss) == 20
    assert state.run_dir is not None and state.run_dir.parent == Path("runs")
    assert any("library chatter" in line for line in state.stderr)


def test_stop_sends_sigint_and_the_run_checkpoints(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STEPS", "2000")
    monkeypatch.setenv("FAKE_RATE", "100")
    code, state = run(RunSpec(recipe_path=DEMO), stop_after=3)
    assert code == 130 and state.status == "stopped"
    assert latest_checkpoint(state.run_dir) is not None and state.resumable
    monkeypatch.setenv("FAKE_STEPS", str(state.current_step + 5))
    code, resumed = run(RunSpec(resume_dir=state.run_dir), grace=5.0)
    assert code == 0 and resumed.started.resumed_from_step == state.current_step


def test_an_edited_recipe_runs_from_a_temporary_copy(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_STEPS", "5")
    recipe = load_recipe(DEMO, overrides=["name=edited", "lora_r=8"])
    code, state = run(RunSpec(recipe=recipe))
    assert code == 0 and state.run_dir.name.endswith("-edited")
    assert load_recipe(state.run_dir / "recipe.yaml").lora_r == 8


def test_refused_input_shows_stderr(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "bad")
    code, state = run(RunSpec(recipe_path=DEMO))
    assert code == 2 and state.status == "failed"
    assert "expected a number" in state.error_text[0]
    assert not Path("runs").exists(), "bad input must not create a run directory"


def test_a_crash_without_a_final_event_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "crash")
    code, state = run(RunSpec(recipe_path=DEMO))
    assert code == 1 and state.status == "failed"
    assert "RuntimeError: segfault" in state.error_text[0]


def test_a_run_that_ignores_sigint_is_killed_after_the_grace_period(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_MODE", "hang")
    code, state = run(RunSpec(recipe_path=DEMO), grace=0.5, stop_after=2)
    assert code == -9
    assert any("killing it" in line.text for line in state.log)
