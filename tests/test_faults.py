"""Hours of training are never lost: each fault is caused on purpose, then the next `--resume`
must work without touching a file by hand, and nothing trained before the fault is lost.

Faults: kill -9 in the middle of a checkpoint save; truncated checkpoint files; a NaN in the
loss; SIGTERM; a reader (the TUI) that goes away mid-run; a full disk; two processes on one run;
data edited between stop and resume.
"""

from __future__ import annotations

import errno
import json
import math
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.errors import RecipeError, RunDirError, SlothlabError
from recipes.registry import bundled
from recipes.rundir import BROKEN, checkpoint_problem, checkpoints
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe
from tests.helpers import slothlab_env

ROOT = Path(__file__).resolve().parents[1]
SLOTHLAB = [sys.executable, "-m", "tui.cli"]
SHORT = ["logging_steps=1", "eval_steps=0", "eval_samples=2", "max_new_tokens=4",
         "save_total_limit=0"]


def demo(*overrides: str):
    return load_recipe(bundled()["demo"], overrides=[*SHORT, *overrides])


def events(run_dir: Path) -> list[ev.Event]:
    return ev.read_events(run_dir / "events.jsonl")


def losses(run_dir: Path) -> dict[int, float]:
    return {e.step: e.loss for e in events(run_dir) if e.type == "step"}


def resume(run_dir: Path, cache: Path, **options) -> Path:
    return run(load_recipe(run_dir / "recipe.yaml"),
               RunOptions(resume_dir=run_dir, cache_dir=cache, **options))


@pytest.fixture(scope="module")
def straight(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """12 uninterrupted steps: (run dir, miniature cache) to compare resumed runs against."""
    cache = tmp_path_factory.mktemp("cache")
    run_dir = run(demo("max_steps=12", "save_steps=3"),
                  RunOptions(runs_root=tmp_path_factory.mktemp("runs"), cache_dir=cache))
    return run_dir, cache


def assert_same_training(resumed: Path, straight_run: Path, from_step: int) -> None:
    """Nothing was lost: every step after the resume point equals the uninterrupted run's."""
    got, want = losses(resumed), losses(straight_run)
    assert events(resumed)[-1].type == "finished", events(resumed)[-1]
    assert [got[s] for s in range(from_step + 1, 13)] == [want[s] for s in range(from_step + 1, 13)]
    assert (resumed / "adapter" / "adapter_model.safetensors").is_file()


# -- kill -9 during a save, and truncated files ------------------------------------------------

@pytest.mark.slow
def test_kill_9_during_a_save_then_resume_sets_the_torn_checkpoint_aside(straight, tmp_path):
    straight_run, cache = straight
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "fault_child.py"), "kill-in-save",
                           str(tmp_path / "runs"), str(cache), "6"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == -signal.SIGKILL, proc.stderr[-2000:]
    [run_dir] = list((tmp_path / "runs").iterdir())
    torn = run_dir / "checkpoints" / "checkpoint-6"
    assert torn.is_dir() and checkpoint_problem(torn) is not None, "the kill left a torn save"
    resume(run_dir, cache)  # no file touched by hand
    assert (run_dir / BROKEN / "checkpoint-6.broken").is_dir(), "set aside, never deleted"
    started = [e for e in events(run_dir) if e.type == "run_started"][-1]
    assert started.resumed_from_step == 3
    notes = " ".join(n for e in events(run_dir) if e.type == "preflight" for n in e.notes)
    assert "checkpoint-6 set aside" in notes
    assert_same_training(run_dir, straight_run, 3)


@pytest.mark.slow
@pytest.mark.parametrize("victim", ["adapter_model.safetensors", "optimizer.pt"])
def test_a_truncated_checkpoint_file_falls_back_to_the_previous_one(straight, tmp_path, victim):
    straight_run, cache = straight
    run_dir = run(demo("max_steps=12", "save_steps=3"),
                  RunOptions(runs_root=tmp_path, cache_dir=cache, stop_at_step=6))
    assert [c.name for c in checkpoints(run_dir)] == ["checkpoint-3", "checkpoint-6"]
    path = run_dir / "checkpoints" / "checkpoint-6" / victim
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])
    resume(run_dir, cache)
    assert (run_dir / BROKEN / "checkpoint-6.broken" / victim).is_file()
    assert_same_training(run_dir, straight_run, 3)


def test_a_checkpoint_is_judged_by_its_marker_and_its_files(tmp_path):
    folder = tmp_path / "checkpoints" / "checkpoint-2"
    folder.mkdir(parents=True)
    assert "missing" in checkpoint_problem(folder)
    for name in ("adapter_model.safetensors", "trainer_state.json", "optimizer.pt",
                 "scheduler.pt", "rng_state.pth"):
        (folder / name).write_text("{}", encoding="utf-8")
    assert checkpoint_problem(folder) is None, "a checkpoint from before markers, judged by files"
    from recipes.rundir import mark_complete

    later = tmp_path / "checkpoints" / "checkpoint-4"
    later.mkdir()
    (later / "optimizer.pt").write_text("x", encoding="utf-8")
    mark_complete(folder)
    assert "never finished" in checkpoint_problem(later), "once markers exist, they are needed"
    (folder / "optimizer.pt").write_text("longer now", encoding="utf-8")
    assert "were written" in checkpoint_problem(folder)


# -- divergence ------------------------------------------------------------------------------

def nan_at(step: int, monkeypatch) -> None:
    """Make the loss of training step ``step`` NaN (from then on the gradients are NaN)."""
    from recipes import trainer as trainer_module

    original = trainer_module.trainer_class

    def patched(device: str, backend: str = "reference") -> type:
        base = original(device, backend)

        class NaNAt(base):
            def compute_loss(self, model, inputs, *args, **kwargs):
                loss = super().compute_loss(model, inputs, *args, **kwargs)
                if self.state.global_step + 1 == step and model.training:
                    return loss * float("nan")
                return loss

        return NaNAt

    monkeypatch.setattr(trainer_module, "trainer_class", patched)


@pytest.mark.slow
def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(straight, tmp_path,
                                                                      monkeypatch):
    straight_run, cache = straight
    nan_at(5, monkeypatch)
    with pytest.raises(SlothlabError, match="diverged at step 5"):
        run(demo("max_steps=12", "save_steps=2"), RunOptions(runs_root=tmp_path, cache_dir=cache))
    [run_dir] = list(tmp_path.iterdir())
    for line in (run_dir / "events.jsonl").read_text(encoding="utf-8").splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"bare {c} in events.jsonl"))
    failed = events(run_dir)[-1]
    assert failed.type == "failed" and failed.step == 5
    assert "learning_rate" in failed.advice and f"slothlab --resume {run_dir}" in failed.advice
    assert [c.name for c in checkpoints(run_dir)] == ["checkpoint-2", "checkpoint-4"]
    assert not (run_dir / "adapter").exists(), "no adapter from diverged weights"
    assert all(math.isfinite(x) for x in losses(run_dir).values())
    monkeypatch.undo()
    resume(run_dir, cache)
    assert events(run_dir)[-1].type == "finished"
    assert [losses(run_dir)[s] for s in range(5, 13)] == [losses(straight_run)[s]
                                                          for s in range(5, 13)]


def test_non_finite_numbers_never_reach_events_jsonl_as_bare_nan():
    step = ev.Step(step=3, total_steps=9, epoch=0.1, loss=float("nan"), learning_rate=1e-3,
                   grad_norm=float("inf"), tokens_per_second=1.0)
    line = step.to_json()
    assert "NaN" not in line and "Infinity" not in line
    parsed = json.loads(line)
    assert parsed["loss"] is None and parsed["nonfinite"] == ["loss", "grad_norm"]
    assert ev.parse_event(line).loss is None


# -- signals ---------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP])  # a job scheduler; a dropped SSH
def test_sigterm_or_sighup_stops_with_a_checkpoint_exit_128_n_and_resumes(tmp_path, tiny_cache,
                                                                          sig):
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*SLOTHLAB, "--recipe", "demo", "--json", "--set", "max_steps=30",
                             "--set", "save_steps=1000", "--set", "eval_steps=0",
                             "--set", "eval_samples=2", "--runs-dir", str(runs)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=slothlab_env(tiny_cache))
    try:
        for line in proc.stdout:
            if json.loads(line)["type"] == "step":
                proc.send_signal(sig)
                break
        rest = proc.stdout.read()
        code = proc.wait(timeout=300)
    finally:
        proc.kill()
    last = ev.parse_event(rest.strip().splitlines()[-1])
    assert code == 128 + sig, proc.stderr.read()[-2000:]
    assert last.type == "stopped" and last.signal == sig.name and Path(last.checkpoint).is_dir()
    [run_dir] = list(runs.iterdir())
    resume(run_dir, tiny_cache)
    assert events(run_dir)[-1].type == "finished" and max(losses(run_dir)) == 30


@pytest.mark.slow
def test_a_run_whose_reader_goes_away_trains_to_the_end(tmp_path, tiny_cache):
    """The TUI's "leave it running and quit": the run's stdout and stderr pipes lose their
    reader mid-run; the run must neither die of a broken pipe nor stop, and events.jsonl must
    still get every event."""
    runs = tmp_path / "runs"
    proc = subprocess.Popen([*SLOTHLAB, "--recipe", "demo", "--json", "--set", "max_steps=20",
                             "--set", "eval_steps=0", "--set", "eval_samples=2",
                             "--set", "max_new_tokens=4", "--set", "logging_steps=1",
                             "--runs-dir", str(runs)],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=slothlab_env(tiny_cache))
    try:
        for line in proc.stdout:
            if json.loads(line)["type"] == "step":
                break
        proc.stdout.close()  # the reader goes away
        proc.stderr.close()
        code = proc.wait(timeout=300)
    finally:
        proc.kill()
    [run_dir] = list(runs.iterdir())
    assert code == 0, f"exit {code} after the pipes closed; last events: {events(run_dir)[-3:]}"
    assert events(run_dir)[-1].type == "finished"
    assert sorted(losses(run_dir)) == list(range(1, 21)), "every step's event is in the file"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()


# -- a full disk -----------------------------------------------------------------------------

@pytest.mark.slow
def test_a_full_disk_says_so_and_the_next_resume_continues(straight, tmp_path, monkeypatch):
    from transformers import Trainer

    straight_run, cache = straight
    original = Trainer._save_optimizer_and_scheduler

    def no_space(self, output_dir):
        if self.state.global_step == 6:
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6656 "
                               "vs 6544")
        return original(self, output_dir)

    monkeypatch.setattr(Trainer, "_save_optimizer_and_scheduler", no_space)
    with pytest.raises(SlothlabError) as err:
        run(demo("max_steps=12", "save_steps=3"), RunOptions(runs_root=tmp_path, cache_dir=cache))
    assert err.value.what.startswith("disk full at ") and "MB free" in err.value.what
    assert "a checkpoint needs about" in err.value.what
    [run_dir] = list(tmp_path.iterdir())
    failed = events(run_dir)[-1]
    assert failed.type == "failed" and failed.step == 6 and "checkpoint-3" in failed.advice
    monkeypatch.undo()
    resume(run_dir, cache)
    assert_same_training(run_dir, straight_run, 3)


def test_enospc_is_recognised_however_it_is_worded():
    from recipes.disk import disk_full

    assert disk_full(OSError(errno.ENOSPC, "No space left on device"))
    assert disk_full(RuntimeError("[enforce fail at inline_container.cc:672] unexpected pos"))
    wrapped = RuntimeError("save failed")
    wrapped.__cause__ = OSError(errno.ENOSPC, "x")
    assert disk_full(wrapped) and not disk_full(RuntimeError("CUDA out of memory"))


def test_the_preflight_warns_when_checkpoints_will_not_fit(tmp_path, monkeypatch):
    from recipes import disk

    monkeypatch.setattr(disk, "free_bytes", lambda path: 50 * disk.MB)
    [note] = disk.disk_note(tmp_path, 20 * disk.MB, keep=3)
    assert "50 MB free" in note and "20.0 MB" in note and "save_total_limit" in note
    assert disk.disk_note(tmp_path, 1 * disk.MB, keep=3) == []


# -- one process per run ---------------------------------------------------------------------

@pytest.mark.slow
def test_two_resumes_of_one_run_one_is_refused_naming_the_other(tmp_path, tiny_cache):
    run_dir = run(demo("max_steps=400", "save_steps=2"),
                  RunOptions(runs_root=tmp_path, cache_dir=tiny_cache, stop_at_step=2))
    proc = subprocess.Popen([*SLOTHLAB, "--resume", str(run_dir), "--json"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=slothlab_env(tiny_cache))
    try:
        for line in proc.stdout:
            if json.loads(line)["type"] == "step":
                break
        with pytest.raises(RunDirError, match=f"another process \\(pid {proc.pid}\\)"):
            resume(run_dir, tiny_cache)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=300) == 130
    finally:
        proc.kill()
    assert events(run_dir)[-1].type == "stopped", "the refused resume wrote nothing"
    assert [e.type for e in events(run_dir)].count("run_started") == 2


# -- data changed between stop and resume -----------------------------------------------------

@pytest.mark.slow
def test_resume_on_changed_data_is_refused_unless_allowed(tmp_path, tiny_cache):
    data = tmp_path / "qa.jsonl"
    data.write_text((ROOT / "data" / "demo_qa.jsonl").read_text(encoding="utf-8"),
                    encoding="utf-8")
    run_dir = run(demo("max_steps=6", "save_steps=2", f"dataset={data}"),
                  RunOptions(runs_root=tmp_path / "runs", cache_dir=tiny_cache, stop_at_step=2))
    with data.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"conversations": [{"from": "human", "value": "hi"},
                                                   {"from": "gpt", "value": "hello"}]}) + "\n")
    before = (run_dir / "events.jsonl").read_bytes()
    with pytest.raises(RunDirError, match="data changed") as err:
        resume(run_dir, tiny_cache)
    assert "qa.jsonl: content differs" in err.value.what and "--allow-data-change" in err.value.fix
    assert (run_dir / "events.jsonl").read_bytes() == before
    resume(run_dir, tiny_cache, allow_data_change=True)
    preflight = [e for e in events(run_dir) if e.type == "preflight"][-1]
    assert any("changed data" in note for note in preflight.notes)
    assert events(run_dir)[-1].type == "finished"


# -- bad recipes ------------------------------------------------------------------------------

def test_a_yaml_alias_bomb_is_refused_quickly_with_a_short_message(tmp_path):
    bomb = ["name: x", 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, 9):
        bomb.append(f"{chr(97 + i)}: &{chr(97 + i)} [{','.join(['*' + chr(96 + i)] * 9)}]")
    path = tmp_path / "bomb.yaml"
    path.write_text("\n".join(bomb) + "\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="alias bomb") as err:
        load_recipe(path)
    assert len(str(err.value)) < 400


def test_an_empty_recipe_is_refused(tmp_path):
    path = tmp_path / "empty.yaml"
    path.write_text("# nothing here yet\n\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="empty"):
        load_recipe(path)


def test_a_huge_value_is_not_echoed_whole(tmp_path):
    with pytest.raises(RecipeError) as err:
        load_recipe(bundled()["demo"], overrides=[f"lora_r={'9' * 5000}x"])
    assert len(err.value.what) < 300 and "characters" in err.value.what


def test_remote_code_files_are_named_in_the_preflight(tmp_path):
    from recipes.stages.finetune import remote_code_note

    recipe = load_recipe(bundled()["inkuba-multitask"])
    (tmp_path / "modeling_inkuba.py").write_text("# code\n", encoding="utf-8")
    [note] = remote_code_note(recipe, tmp_path)
    assert "modeling_inkuba.py" in note and str(tmp_path) in note
    assert remote_code_note(load_recipe(bundled()["demo"]), tmp_path) == []


def test_a_stale_lock_of_a_dead_process_does_not_block(tmp_path):
    from recipes.lock import holder, lock_run

    (tmp_path / ".lock").write_text("99999999\n", encoding="utf-8")  # left by a killed run
    assert holder(tmp_path) is None
    handle = lock_run(tmp_path)
    try:
        assert holder(tmp_path) == os.getpid()
        with pytest.raises(RunDirError, match=f"pid {os.getpid()}"):
            lock_run(tmp_path)
    finally:
        handle.close()


def test_under_nohup_sighup_stays_ignored():
    from recipes.signals import StopFlag

    previous = signal.signal(signal.SIGHUP, signal.SIG_IGN)
    try:
        restore = StopFlag().install()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN, "nohup asked for it ignored"
        restore()
    finally:
        signal.signal(signal.SIGHUP, previous)
