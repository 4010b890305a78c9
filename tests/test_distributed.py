"""More than one process (recipes/distributed.py): DDP under torchrun on the CPU (gloo).

The end-to-end test launches the demo with ``torchrun --nproc_per_node 2``, stops it with
SIGINT to torchrun (which forwards it to both workers), resumes it with the same launch, and
compares its losses with one process accumulating twice as many micro-batches (the same 16
examples per optimizer step). Tolerance: 1e-5 relative (gloo sums the two halves of the
gradient in another order; the runs here agree to the last bit).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import distributed
from recipes import events as ev
from recipes.backends import select_backend
from recipes.errors import BackendError, RunDirError
from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe
from tests.helpers import slothlab_env

REL_TOL = 1e-5
QUICK = ["max_steps=5", "save_steps=100", "eval_steps=0", "eval_samples=2", "eval_prompts=1",
         "max_new_tokens=4", "logging_steps=1"]
TORCHRUN = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
            "2", "-m", "tui.cli"]


def test_one_process_is_the_identity(monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    stop = object()
    assert distributed.synced_stop(stop) is stop and distributed.stop_callbacks(stop) == []
    assert distributed.from_main(lambda: 7) == 7 and distributed.any_rank(True)
    assert distributed.command() == "slothlab"


def test_the_synced_stop_changes_only_when_the_ranks_agree() -> None:
    class Flag:
        requested, phase = False, "this training step"

    local = Flag()
    stop = distributed.SyncedStop(local)
    local.requested = True  # a signal, in the middle of a step
    assert not stop.requested, "seen only at the step end, on every rank at once"
    stop.sync()  # one process: the agreement is its own flag
    assert stop.requested
    stop.phase = "the base model's evaluation"  # other attributes are the flag's own
    assert local.phase == stop.phase


def test_unsloth_refuses_to_run_distributed_and_names_the_reference_backend(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(BackendError) as info:
        select_backend("unsloth", cuda=True, unsloth_problem=None)
    assert "single-GPU" in info.value.what and "--backend reference" in info.value.fix
    choice = select_backend("auto", cuda=True, unsloth_problem=None)
    assert choice.name == "reference" and "2 processes" in choice.reason


def test_an_fsdp_launch_is_refused_with_the_ddp_command(monkeypatch) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("ACCELERATE_USE_FSDP", "true")
    with pytest.raises(BackendError) as info:
        select_backend("auto", cuda=True, unsloth_problem=None)
    assert "FSDP is not supported" in info.value.what and "--multi_gpu" in info.value.fix


def test_resume_needs_the_same_number_of_processes(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    (tmp_path / "events.jsonl").write_text(ev.RunStarted(
        run_dir=str(tmp_path), recipe="demo", backend="reference", backend_reason="",
        device="CPU", tiny=True, world_size=2).to_json() + "\n")
    with pytest.raises(RunDirError) as info:
        distributed.check_same_world(tmp_path)
    assert f"torchrun --nproc_per_node 2 -m tui.cli --resume {tmp_path}" in info.value.fix


def losses(run_dir: Path) -> dict[int, float]:
    return {e.step: e.loss for e in ev.read_events(run_dir / "events.jsonl")
            if isinstance(e, ev.Step)}


@pytest.mark.slow
def test_ddp_on_two_processes_writes_one_run_and_trains_like_twice_the_accumulation(
        tmp_path: Path, tiny_cache: Path, monkeypatch) -> None:
    runs, env = tmp_path / "runs", slothlab_env(tiny_cache)
    args = ["--recipe", "demo", "--json", *(a for s in QUICK for a in ("--set", s)),
            "--runs-dir", str(runs)]
    # Ctrl-C in a terminal reaches torchrun, which forwards SIGINT to every worker.
    proc = subprocess.Popen([*TORCHRUN, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    try:
        first = []
        for line in proc.stdout:
            first.append(ev.parse_event(line))
            if first[-1].type == "preflight":
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        proc.wait(timeout=300)
    finally:
        proc.kill()
    first += [ev.parse_event(line) for line in rest.splitlines() if line.strip()]
    stopped = first[-1]
    assert stopped.type == "stopped" and stopped.step == 1, proc.stderr.read()[-3000:]
    assert stopped.resume_command.startswith("torchrun --nproc_per_node 2 -m tui.cli --resume")
    [run_dir] = runs.iterdir()  # rank 1 learnt rank 0's folder instead of making its own
    assert sum(e.type == "run_started" for e in first) == 1, "only rank 0 prints events"
    checkpoint = Path(stopped.checkpoint)
    assert {p.name for p in checkpoint.glob("rng_state_*.pth")} == {"rng_state_0.pth",
                                                                     "rng_state_1.pth"}

    monkeypatch.delenv("WORLD_SIZE", raising=False)
    with pytest.raises(RunDirError, match="trained with 2 process"):
        run(load_recipe(run_dir / "recipe.yaml"), RunOptions(runs_root=runs, resume_dir=run_dir,
                                                             cache_dir=tiny_cache))

    resumed = subprocess.run([*TORCHRUN, "--resume", str(run_dir), "--json"],
                             capture_output=True, text=True, env=env, timeout=600)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    events = ev.read_events(run_dir / "events.jsonl")
    assert events[-1].type == "finished" and events[-1].step == 5
    assert [e.world_size for e in events if isinstance(e, ev.RunStarted)] == [2, 2]
    preflight = next(e for e in events if isinstance(e, ev.Preflight))
    assert (preflight.world_size, preflight.global_batch) == (2, 16)
    assert preflight.settings["batch"] == ("8 per device × 1 accumulation × 2 processes = 16 "
                                           "examples per optimizer step")
    assert [p.relative_to(runs) for p in runs.rglob("events.jsonl")] == [
        run_dir.relative_to(runs) / "events.jsonl"]
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert json.loads((run_dir / "done.json").read_text())["steps"] == 5

    single = run(load_recipe(bundled()["demo"], overrides=[*QUICK, "gradient_accumulation_steps=2"]),
                 RunOptions(runs_root=tmp_path / "single", cache_dir=tiny_cache))
    ddp, one = losses(run_dir), losses(single)
    assert sorted(ddp) == sorted(one) == [1, 2, 3, 4, 5]
    for step, loss in one.items():
        assert abs(ddp[step] - loss) <= REL_TOL * abs(loss), (step, ddp, one)
