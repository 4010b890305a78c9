"""CUDA out-of-memory back-off and batch_size auto (recipes/oom.py), on a CPU.

The end-to-end tests raise ``torch.OutOfMemoryError`` through the test-only fault hook
(SLOTHLAB_TEST_OOM) in the demo recipe and check, with the installed transformers / TRL, that
the run finishes with the same effective batch and the same examples in every optimizer step,
and that its losses equal those of a run started from the same checkpoint with the backed-off
settings. Tolerance: 1e-5 relative (fp32 on a CPU; smaller micro-batches only reorder sums; the
runs here agree to the last bit).
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from recipes import events as ev
from recipes.errors import RecipeError
from recipes.oom import (
    FAULT_ENV,
    Faults,
    OutOfMemory,
    next_eval_change,
    next_train_change,
    resolve_auto_batch,
    smaller_batch,
)
from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import Recipe, describe_fields, dump_recipe, load_recipe

REL_TOL = 1e-5
# 45 rows: 37 train examples, so a batch of 8 makes 5 optimizer steps an epoch (the last one 5
# examples): 8 steps cross an epoch boundary, where the sampler draws a new order.
QUICK = ["max_examples=45", "logging_steps=1", "eval_steps=0", "eval_samples=2",
         "eval_prompts=1", "max_new_tokens=4", "max_steps=8", "save_steps=3"]


# -- the policy ---------------------------------------------------------------------------------


def test_training_backoff_halves_the_batch_then_turns_checkpointing_on() -> None:
    recipe = Recipe(batch_size=8, gradient_accumulation_steps=4, gradient_checkpointing=False)
    seen = []
    while (change := next_train_change(recipe)) is not None:
        recipe = replace(recipe, **{k: v[1] for k, v in change.items()})
        seen.append((recipe.batch_size, recipe.gradient_accumulation_steps,
                     recipe.gradient_checkpointing))
    assert seen == [(4, 8, False), (2, 16, False), (1, 32, False), (1, 32, True)]
    assert recipe.max_seq_length == Recipe().max_seq_length  # never touched


def test_odd_batches_divide_by_their_smallest_prime_and_keep_the_effective_batch() -> None:
    assert [smaller_batch(b) for b in (2, 3, 5, 6, 9, 12)] == [1, 1, 1, 3, 3, 6]
    change = next_train_change(Recipe(batch_size=6, gradient_accumulation_steps=3))
    assert change == {"batch_size": [6, 3], "gradient_accumulation_steps": [3, 6]}


def test_eval_backoff_halves_the_eval_batch_down_to_one() -> None:
    assert next_eval_change(Recipe(eval_batch_size=5)) == {"eval_batch_size": [5, 2]}
    assert next_eval_change(Recipe(eval_batch_size=1)) is None


def test_fault_spec_counts_each_retry() -> None:
    import torch

    faults = Faults("train@5, eval@0,train@1x2")
    assert faults.left == {("train", 5): 1, ("eval", 0): 1, ("train", 1): 2}
    for _ in range(2):
        with pytest.raises(torch.OutOfMemoryError):
            faults.fire("train", 1)
    faults.fire("train", 1)  # used up
    faults.fire("train", 2)  # never asked for


# -- batch_size: auto ---------------------------------------------------------------------------


def test_batch_size_auto_is_read_written_and_listed() -> None:
    recipe = load_recipe(bundled()["demo"], overrides=["batch_size=auto"])
    assert recipe.batch_size == 0
    assert "batch_size: auto" in dump_recipe(recipe).splitlines()
    again = yaml.safe_load(dump_recipe(recipe))
    assert again["batch_size"] == "auto"
    [spec] = [f for f in describe_fields() if f["name"] == "batch_size"]
    assert spec["type"] == "an integer or auto" and spec["min"] == 0


def test_batch_size_auto_is_refused_for_pretraining() -> None:
    with pytest.raises(RecipeError, match="batch_size auto"):
        load_recipe(bundled()["gemma3-scratch"], overrides=["batch_size=auto"])


def test_auto_batch_is_the_largest_whose_estimate_stays_under_90_percent() -> None:
    from kernels_check.fit import auto_batch_size, estimate

    recipe = load_recipe(bundled()["medqa-tinyllama"], overrides=["batch_size=auto"])
    for vram in (6, 8, 12):
        batch = auto_batch_size(recipe, vram, backend="reference")
        assert batch >= 1
        at = estimate(replace(recipe, batch_size=batch), vram, backend="reference").total_gib
        above = estimate(replace(recipe, batch_size=batch + 1), vram,
                         backend="reference").total_gib
        assert at <= 0.9 * vram < above, (vram, batch, at, above)
    # the estimate of an auto recipe is the estimate at the batch auto picks
    assert estimate(recipe, 8).batch_size == auto_batch_size(recipe, 8)


def test_auto_batch_without_a_gpu_is_the_default_and_never_above_the_data() -> None:
    recipe = Recipe(batch_size=0)
    resolved, [note] = resolve_auto_batch(recipe, "cpu", "reference", n_train=100)
    assert resolved.batch_size == 2 and "no GPU" in note
    resolved, [note] = resolve_auto_batch(recipe, "cpu", "reference", n_train=1)
    assert resolved.batch_size == 1 and "capped at the 1 training examples" in note
    assert resolve_auto_batch(Recipe(batch_size=4), "cpu", "reference", 100) == (
        Recipe(batch_size=4), [])


# -- end to end on the demo ---------------------------------------------------------------------


def steps(run_dir: Path) -> dict[int, float]:
    """Loss per step; a step that ran again after a back-off keeps its last loss."""
    return {e.step: e.loss for e in ev.read_events(run_dir / "events.jsonl")
            if isinstance(e, ev.Step)}


def train(overrides: list[str], runs: Path, cache: Path, **options) -> Path:
    recipe = load_recipe(bundled()["demo"], overrides=[*QUICK, *overrides])
    return run(recipe, RunOptions(runs_root=runs, cache_dir=cache, **options))


def recording(mp: pytest.MonkeyPatch) -> dict[int, tuple[list[int], list[tuple]]]:
    """What each optimizer step really trained on, read inside transformers' training loop:
    step -> (micro-batch sizes, the step's examples as sorted token tuples). A step that runs
    again (after a back-off) keeps its last record."""
    from transformers import Trainer

    seen: dict[int, tuple[list[int], list[tuple]]] = {}
    original = Trainer.get_batch_samples

    def spy(self, epoch_iterator, num_batches, device):
        batches, count = original(self, epoch_iterator, num_batches, device)
        examples = [tuple(ids[mask.bool()].tolist()) for b in batches
                    for ids, mask in zip(b["input_ids"], b["attention_mask"], strict=True)]
        seen[self.state.global_step + 1] = ([len(b["input_ids"]) for b in batches],
                                            sorted(examples))
        return batches, count

    mp.setattr(Trainer, "get_batch_samples", spy)
    return seen


def assert_close(got: dict[int, float], want: dict[int, float], which: range) -> None:
    for step in which:
        assert abs(got[step] - want[step]) <= REL_TOL * abs(want[step]), (step, got, want)


@pytest.fixture(scope="module")
def straight(tmp_path_factory, tiny_cache):
    """The demo, batch 8 x accumulation 1, 8 steps, no fault: (run dir, per-step record)."""
    with pytest.MonkeyPatch.context() as mp:
        seen = recording(mp)
        run_dir = train([], tmp_path_factory.mktemp("straight"), tiny_cache)
    return run_dir, seen


@pytest.fixture(scope="module")
def backed_off(tmp_path_factory, tiny_cache):
    """The same run with an OOM before step 5's update (checkpoint 3 exists; steps 4-5 finish
    epoch 0, the last one a 5-example step) and one in the evaluation of step 6."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv(FAULT_ENV, "train@5,eval@6")
        seen = recording(mp)
        run_dir = train(["eval_steps=6"], tmp_path_factory.mktemp("backed-off"), tiny_cache)
    return run_dir, seen


@pytest.mark.slow
def test_training_oom_backs_off_and_the_run_finishes(backed_off) -> None:
    run_dir, _ = backed_off
    events = ev.read_events(run_dir / "events.jsonl")
    ooms = [e for e in events if isinstance(e, ev.Oom)]
    assert [(e.phase, e.step, e.resume_step, e.changes) for e in ooms] == [
        ("train", 5, 3, {"batch_size": [8, 4], "gradient_accumulation_steps": [1, 2]}),
        ("eval", 6, 0, {"eval_batch_size": [8, 4]})]
    assert events[-1].type == "finished" and events[-1].step == 8
    assert [e.step for e in events if isinstance(e, ev.Eval)][-2:] == [6, 8]
    saved = load_recipe(run_dir / "recipe.yaml")  # what --resume and the report use
    assert (saved.batch_size, saved.gradient_accumulation_steps, saved.eval_batch_size) == (4, 2, 4)
    report = (run_dir / "report.md").read_text(encoding="utf-8")
    assert "backed off: batch 8→4, accumulation 1→2 (effective batch 8) at step 5" in report
    assert "| batch | 4 per device × 2 accumulation = 8 examples per optimizer step |" in report


@pytest.mark.slow
def test_backoff_keeps_the_effective_batch_and_the_data_order(straight, backed_off) -> None:
    (_, before), (_, after) = straight, backed_off
    assert sorted(before) == sorted(after) == list(range(1, 9))
    for step in range(1, 9):
        sizes, examples = after[step]
        assert examples == before[step][1], f"step {step} trained on other examples"
        if step >= 4:  # ran again after the back-off: two micro-batches instead of one
            assert sizes == ([4, 1] if step == 5 else [4, 4]), (step, sizes)
    assert before[5][0] == [5], "step 5 ends epoch 0 with the 37 - 4 x 8 = 5 examples left"


@pytest.mark.slow
def test_backoff_losses_match_the_run_that_never_ran_out(straight, backed_off) -> None:
    assert_close(steps(backed_off[0]), steps(straight[0]), range(1, 9))


@pytest.mark.slow
def test_backoff_continues_as_a_run_started_from_that_checkpoint_with_its_settings(
        backed_off, runs_dir, tiny_cache) -> None:
    stopped = train([], runs_dir, tiny_cache, stop_at_step=3)
    recipe = load_recipe(stopped / "recipe.yaml", overrides=["batch_size=4",
                                                              "gradient_accumulation_steps=2"])
    (stopped / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    run(recipe, RunOptions(runs_root=runs_dir, cache_dir=tiny_cache, resume_dir=stopped))
    assert_close(steps(backed_off[0]), steps(stopped), range(4, 9))


@pytest.mark.slow
def test_oom_before_the_first_checkpoint_starts_again_from_the_same_start(
        straight, runs_dir, tiny_cache, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "train@2")
    run_dir = train(["save_steps=100"], runs_dir, tiny_cache)
    [oom] = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.Oom)]
    assert oom.resume_step == 0 and "starting training again" in oom.message
    assert_close(steps(run_dir), steps(straight[0]), range(1, 9))


@pytest.mark.slow
def test_nothing_left_to_back_off_fails_with_advice(runs_dir, tiny_cache, monkeypatch) -> None:
    monkeypatch.setenv(FAULT_ENV, "train@1x3")
    with pytest.raises(OutOfMemory) as info:
        train(["batch_size=2", "gradient_checkpointing=false", "max_steps=2", "eval_samples=0"],
              runs_dir, tiny_cache)
    assert "nothing left to back off" in info.value.what
    assert "max_seq_length" in info.value.fix
    [run_dir] = runs_dir.iterdir()
    events = ev.read_events(run_dir / "events.jsonl")
    assert [e.changes for e in events if isinstance(e, ev.Oom)] == [
        {"batch_size": [2, 1], "gradient_accumulation_steps": [1, 2]},
        {"gradient_checkpointing": [False, True]}]
    assert events[-1].type == "failed" and "nothing left to back off" in events[-1].error
    saved = load_recipe(run_dir / "recipe.yaml")
    assert (saved.batch_size, saved.gradient_accumulation_steps,
            saved.gradient_checkpointing) == (1, 2, True)


@pytest.mark.slow
def test_backoff_off_fails_as_before(runs_dir, tiny_cache, monkeypatch) -> None:
    import torch

    monkeypatch.setenv(FAULT_ENV, "train@1")
    with pytest.raises(torch.OutOfMemoryError):
        train(["oom_backoff=false", "max_steps=2", "eval_samples=0"], runs_dir, tiny_cache)
    [run_dir] = runs_dir.iterdir()
    events = ev.read_events(run_dir / "events.jsonl")
    assert not [e for e in events if isinstance(e, ev.Oom)]
    assert events[-1].type == "failed" and "lower batch_size" in events[-1].advice
    assert load_recipe(run_dir / "recipe.yaml").batch_size == 8


@pytest.mark.slow
def test_unsloth_backend_backs_off_to_its_gradient_checkpointing(tmp_path, tiny_cache) -> None:
    """Through Unsloth's CPU backend (in a child process: importing unsloth patches TRL for the
    whole process): batch 2→1, then Unsloth's checkpointing turned on in the loaded model."""
    import json
    import os
    import subprocess
    import sys

    from tests.helpers import slothlab_env

    env = {**slothlab_env(tiny_cache), FAULT_ENV: "train@1x2"}
    proc = subprocess.run(
        [sys.executable, "-m", "tui.cli", "--recipe", "demo", "--backend", "unsloth", "--json",
         "--set", "max_steps=2", "--set", "batch_size=2", "--set", "gradient_checkpointing=false",
         "--set", "eval_samples=0", "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env, timeout=900, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    ooms = [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.Oom)]
    assert [list(e.changes) for e in ooms] == [["batch_size", "gradient_accumulation_steps"],
                                               ["gradient_checkpointing"]]
    done = json.loads((run_dir / "done.json").read_text(encoding="utf-8"))
    assert done["settings"]["gradient checkpointing"].startswith("on")
    assert done["settings"]["batch"].startswith("1 per device × 2 accumulation")
    assert os.path.isfile(run_dir / "adapter" / "adapter_model.safetensors")


GPU_CHILD = """
import sys, torch
budget = int(sys.argv[1]) * 2**20
torch.cuda.set_per_process_memory_fraction(budget / torch.cuda.get_device_properties(0).total_memory)
from tui.cli import main
sys.exit(main(sys.argv[2:]))
"""


@pytest.mark.gpu
@pytest.mark.slow
def test_a_real_cuda_oom_backs_off_on_a_small_model(tmp_path, tiny_cache) -> None:
    """A real out-of-memory error: the demo's miniature with every training example in one
    batch, in a child process whose CUDA allocator may use 128 MiB only."""
    import json
    import subprocess
    import sys

    from tests.helpers import slothlab_env

    proc = subprocess.run(
        [sys.executable, "-c", GPU_CHILD, "128", "--recipe", "demo", "--backend", "reference",
         "--json", "--set", "batch_size=256", "--set", "gradient_accumulation_steps=1",
         "--set", "max_steps=2", "--set", "eval_samples=0", "--set", "eval_steps=0",
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=slothlab_env(tiny_cache), timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = (tmp_path / "runs").iterdir()
    events = ev.read_events(run_dir / "events.jsonl")
    ooms = [e for e in events if isinstance(e, ev.Oom)]
    assert ooms and all(e.phase == "train" and "batch_size" in e.changes for e in ooms)
    saved = load_recipe(run_dir / "recipe.yaml")
    assert saved.batch_size < 256 and saved.batch_size * saved.gradient_accumulation_steps == 256
    assert events[-1].type == "finished"
    done = json.loads((run_dir / "done.json").read_text(encoding="utf-8"))
    assert any(c.startswith("backed off: batch 256→128") for c in done["changes"])
