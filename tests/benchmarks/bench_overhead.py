"""Orchestration overhead: the demo recipe's training phase through slothlab vs a bare TRL script.

    .venv/bin/python tests/benchmarks/bench_overhead.py                  # 3 reps each, 150 steps
    .venv/bin/python tests/benchmarks/bench_overhead.py --reps 5 --steps 100
    .venv/bin/python tests/benchmarks/bench_overhead.py --threads 1     # for a busy machine

Both sides train the same miniature model (the demo's tiny TinyLlama, 4-bit NF4 + LoRA, built
by slothlab's own ``recipes.tiny.build_tiny_model`` into a temporary cache) on the same
tokenized data (``recipes.data.prepare.load_examples`` + ``prepare``), for the same number of steps with
the same batch size, learning rate, schedule, seed and ``adamw_8bit`` optimizer:

* **bare**: a plain TRL trainer built here with a minimal ``SFTConfig`` (no eval, no checkpoint
  saving, ``report_to="none"``) and no callbacks but a timer. The trainer class is
  ``recipes.trainer.trainer_class("cpu")``: TRL 1.15's ``SFTTrainer.compute_loss`` goes through a
  fused Triton LM-head kernel, and Triton has no CPU driver, so a stock ``SFTTrainer`` cannot
  train on a CPU at all. slothlab's CPU subclass only swaps the loss for the model's own
  causal-LM cross-entropy; both sides use it, so the comparison is like for like.
* **slothlab**: ``recipes.runner.run(recipe, RunOptions(...))``, the path ``slothlab --recipe demo``
  takes, with ``eval_steps=0``, ``val_fraction=0``, ``test_fraction=0``, ``eval_samples=0`` and
  ``eval_prompts=0`` (no evaluation of any kind) and ``save_steps`` larger than the run (no
  periodic checkpoints), so that only the orchestration differs: the event callback, the
  JSON-lines event writer, per-step memory sampling and token counting.

``run()`` also loads the data and the model and saves the adapter, so only the training phase
is compared: the time from the first to the last logged step (``logging_steps`` apart), taken
from ``step`` events by a ``RunOptions.listeners`` entry on the slothlab side and from
``on_log`` by a ``TrainerCallback`` on the bare side. Runs alternate (bare, slothlab, then
slothlab, bare, ...) so drift in machine speed hits both sides alike, and the verdict is the
median of the per-pair ratios. Each run also reports how much CPU other processes took during
its timed window (from /proc/stat): with 2 cores, torch's threads slow down many times over when
something else runs, so pairs where that share exceeds ``--max-foreign`` are left out of the
wall-clock figures. Steps per CPU-second of this process are reported too; with
``--threads 1`` they barely move under contention, and the verdict falls back to them when every
pair was disturbed. The
final losses printed for both sides should be identical: a check that the two really train the
same thing. Everything is written under a temporary directory that is removed at the end.

Note for anyone writing the bare script by hand: ``SFTConfig`` defaults to
``gradient_checkpointing=True`` and ``bf16=True`` (unlike ``TrainingArguments``); slothlab sets
both off on a CPU, so the bare side must too, or it measures checkpointing and bf16 autocast
(about 25% slower here) rather than orchestration.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from recipes import events as ev
from recipes.host import PROJECT_ROOT
from recipes.registry import find_recipe
from recipes.schema import Recipe, load_recipe


@dataclass
class Mark:
    """One logged step: when, and how busy the machine was (to spot other processes)."""

    step: int
    wall: float
    busy_jiffies: int  # every CPU's non-idle time so far, from /proc/stat
    own_seconds: float  # this process's user + system CPU time so far

    @classmethod
    def now(cls, step: int) -> Mark:
        try:
            with open("/proc/stat") as fh:
                fields = [int(x) for x in fh.readline().split()[1:]]
            busy = sum(fields) - fields[3] - fields[4]  # minus idle and iowait
        except OSError:  # not Linux: no contention figure
            busy = 0
        times = os.times()
        return cls(step, time.perf_counter(), busy, times.user + times.system)


@dataclass
class Timing:
    side: str
    first: Mark
    last: Mark
    final_loss: float | None

    @property
    def seconds(self) -> float:
        return self.last.wall - self.first.wall

    @property
    def steps_per_second(self) -> float:
        return (self.last.step - self.first.step) / self.seconds

    @property
    def cpu_steps_per_second(self) -> float:
        """Steps per CPU-second of this process: steady under contention with --threads 1 only."""
        return (self.last.step - self.first.step) / (self.last.own_seconds - self.first.own_seconds)

    @property
    def foreign_cpu(self) -> float:
        """Share of the machine's CPU time other processes used during the timed window."""
        if not self.last.busy_jiffies:
            return 0.0
        busy = (self.last.busy_jiffies - self.first.busy_jiffies) / os.sysconf("SC_CLK_TCK")
        own = self.last.own_seconds - self.first.own_seconds
        return max(0.0, busy - own) / (self.seconds * (os.cpu_count() or 1))


def demo_recipe(steps: int, logging_steps: int) -> Recipe:
    return load_recipe(find_recipe("demo"), overrides=[
        f"max_steps={steps}", f"logging_steps={logging_steps}", "eval_steps=0",
        "val_fraction=0", "test_fraction=0", "eval_samples=0", "eval_prompts=0",
        f"save_steps={steps * 100}",
    ])


def prepare_inputs(recipe: Recipe, cache: Path, scratch: Path) -> tuple[Path, object]:
    """The tiny model folder and the tokenized data, built as the finetune stage builds them."""
    from recipes.backends import load_model, reference
    from recipes.data.prepare import load_examples, prepare
    from recipes.schema import data_source
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    source = data_source(recipe)
    examples, skipped, n_rows = load_examples(recipe, source, base_dirs=[PROJECT_ROOT])
    scratch.mkdir(parents=True, exist_ok=True)
    folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache)
    _, tokenizer = load_model(reference, folder, recipe, "cpu")
    data = prepare(recipe, tokenizer, examples, skipped, n_rows, source=source)
    return folder, data


def bare_run(recipe: Recipe, folder: Path, data, out_dir: Path) -> Timing:
    """A plain TRL training script: load, SFTConfig, trainer, train. Nothing else."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig

    from recipes.backends import load_model, reference
    from recipes.trainer import adapters_in_fp32, trainer_class

    model, tokenizer = load_model(reference, folder, recipe, "cpu")
    train = Dataset.from_dict({"input_ids": [t.input_ids for t in data.train],
                               "labels": [t.labels for t in data.train]})
    marks: list[Mark] = []

    class LogTimer(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                marks.append(Mark.now(state.global_step))

    args = SFTConfig(
        output_dir=str(out_dir),
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        max_steps=recipe.max_steps,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        optim=recipe.optimizer,
        max_grad_norm=recipe.max_grad_norm,
        # SFTConfig's own defaults differ from TrainingArguments': gradient_checkpointing=True and
        # bf16=True (autocast, even on a CPU). slothlab passes both explicitly (the backend owns
        # checkpointing; fp32 on a CPU), so an equivalent script must too, or it measures those.
        gradient_checkpointing=recipe.gradient_checkpointing,
        bf16=False,
        fp16=False,
        logging_steps=recipe.logging_steps,
        eval_strategy="no",
        save_strategy="no",
        seed=recipe.seed,
        data_seed=recipe.seed,
        use_cpu=True,
        report_to="none",
        disable_tqdm=True,
        max_length=recipe.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},
        dataloader_num_workers=0,
    )
    trainer = trainer_class("cpu")(model=model, args=args, train_dataset=train,
                                   processing_class=tokenizer, callbacks=[LogTimer()])
    trainer.remove_callback(PrinterCallback)  # keep stdout for the table (slothlab removes it too)
    adapters_in_fp32(model)  # the same training as slothlab's (TRL alone would make them bf16)
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    return Timing("bare", marks[0], marks[-1], losses[-1] if losses else None)


def slothlab_run(recipe: Recipe, runs_root: Path, cache: Path) -> Timing:
    from recipes.runner import RunOptions, run

    marks: list[Mark] = []
    final: list[float | None] = [None]

    def listen(event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            marks.append(Mark.now(event.step))
        elif isinstance(event, ev.Finished):
            final[0] = event.final_loss

    run(recipe, RunOptions(backend="reference", runs_root=runs_root, cache_dir=cache,
                           listeners=[listen]))
    return Timing("slothlab", marks[0], marks[-1], final[0])


def callback_cost(root: Path, calls: int = 2000) -> tuple[float, float]:
    """Seconds per call of slothlab's EventCallback.on_log and .on_step_end, measured directly.

    A microbenchmark of the orchestration itself (memory sampling, the Step event, its JSON line
    written and flushed, listeners), immune to the noise of whole training runs.
    """
    import types

    from recipes.signals import StopFlag
    from recipes.trainer import event_callback

    writer = ev.EventWriter(root / "events.jsonl")
    callback = event_callback(writer, "cpu", StopFlag(), None)
    state = types.SimpleNamespace(global_step=5, max_steps=150, epoch=0.1,
                                  num_input_tokens_seen=0)
    logs = {"loss": 2.5, "learning_rate": 1e-3, "grad_norm": 1.5}
    callback.on_train_begin(None, state, None)
    t0 = time.perf_counter()
    for _ in range(calls):
        state.num_input_tokens_seen += 400
        callback.on_log(None, state, None, logs=logs)
    t1 = time.perf_counter()
    for _ in range(calls):
        callback.on_step_end(None, state, None)
    t2 = time.perf_counter()
    writer.close()
    return (t1 - t0) / calls, (t2 - t1) / calls


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--logging-steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=0,
                        help="torch.set_num_threads for both sides (default: torch's own choice); "
                             "1 makes CPU-time figures exact on a busy machine")
    parser.add_argument("--max-foreign", type=float, default=0.10,
                        help="runs during which other processes used more than this share of the "
                             "CPUs are flagged as disturbed and left out of the verdict")
    args = parser.parse_args()

    # A CPU benchmark on any machine: with a GPU visible, run() would train there and the bare
    # side (CPU trainer class) would not be comparable.
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    from recipes.host import quiet_libraries

    quiet_libraries()  # as run() does
    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    started = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores; "
          f"torch threads {torch.get_num_threads()}", flush=True)
    recipe = demo_recipe(args.steps, args.logging_steps)
    pairs: list[dict[str, Timing]] = []
    with tempfile.TemporaryDirectory(prefix="slothlab-bench-") as tmp:
        root = Path(tmp)
        cache, runs_root = root / "cache", root / "runs"
        folder, data = prepare_inputs(recipe, cache, root / "inputs")
        print(f"demo recipe: {len(data.train)} train examples, batch {recipe.batch_size}, "
              f"{recipe.max_steps} steps, logging every {recipe.logging_steps}, "
              f"optim {recipe.optimizer}, timed from step {recipe.logging_steps} to "
              f"{recipe.max_steps}", flush=True)
        for rep in range(args.reps):
            order = ("bare", "slothlab") if rep % 2 == 0 else ("slothlab", "bare")
            pair: dict[str, Timing] = {}
            for side in order:
                if side == "bare":
                    timing = bare_run(recipe, folder, data, root / f"bare-{rep}")
                else:
                    timing = slothlab_run(recipe, runs_root, cache)
                pair[side] = timing
                flag = "  DISTURBED" if timing.foreign_cpu > args.max_foreign else ""
                print(f"  rep {rep + 1} {side:8s}: {timing.seconds:6.2f} s = "
                      f"{timing.steps_per_second:6.2f} steps/s ({timing.cpu_steps_per_second:6.2f} "
                      f"per CPU-second), final loss "
                      f"{timing.final_loss:.4f}, other processes {timing.foreign_cpu:4.0%} of "
                      f"CPU{flag}", flush=True)
            pairs.append(pair)
        per_log, per_step = callback_cost(root)

    def clean(pair: dict[str, Timing]) -> bool:
        return all(t.foreign_cpu <= args.max_foreign for t in pair.values())

    used = [p for p in pairs if clean(p)]
    note = f"{len(used)} of {len(pairs)} pairs undisturbed"
    reliable = bool(used)
    if not used:
        used, note = pairs, "every pair was disturbed by other processes: figures are unreliable"
    print()
    print(f"results ({note}):")
    print(f"  {'side':10s} {'median steps/s':>15s} {'best steps/s':>13s} {'steps/CPU-s':>12s}"
          "  per run (steps/s)")
    for side in ("bare", "slothlab"):
        wall = [p[side].steps_per_second for p in used]
        cpu = statistics.median(p[side].cpu_steps_per_second for p in used)
        print(f"  {side:10s} {statistics.median(wall):15.2f} {max(wall):13.2f} {cpu:12.2f}  "
              + " ".join(f"{r:.2f}" for r in wall))
    wall_ratios = [p["slothlab"].steps_per_second / p["bare"].steps_per_second for p in used]
    cpu_ratios = [p["slothlab"].cpu_steps_per_second / p["bare"].cpu_steps_per_second
                  for p in pairs]
    wall_ratio, cpu_ratio = statistics.median(wall_ratios), statistics.median(cpu_ratios)
    print(f"  ratio slothlab/bare, wall clock: median of pairs {wall_ratio:.3f} "
          f"({' '.join(f'{r:.3f}' for r in wall_ratios)})")
    print(f"  ratio slothlab/bare, CPU time (all pairs): median {cpu_ratio:.3f} "
          f"({' '.join(f'{r:.3f}' for r in cpu_ratios)})")
    ratio, basis = (wall_ratio, "wall clock") if reliable else (cpu_ratio, "CPU time")
    verdict = "OK" if ratio >= 0.95 else "BELOW TARGET"
    print(f"  verdict on {basis}: {ratio:.3f}, target >= 0.95 -> {verdict}")
    step_s = 1 / max(p["bare"].steps_per_second for p in pairs)  # the least disturbed bare step
    share = (per_log / recipe.logging_steps + per_step) / step_s
    print(f"  slothlab's EventCallback measured alone: on_log {per_log * 1e6:.0f} us per logged "
          f"step, on_step_end {per_step * 1e6:.1f} us per step = {share:.2%} of a "
          f"{step_s * 1e3:.1f} ms step at logging_steps={recipe.logging_steps}")
    print(f"  total wall time {time.perf_counter() - started:.0f} s, "
          f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
