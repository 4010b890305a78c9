"""Orchestration overhead: the demo recipe's training phase through slothlab vs a bare TRL script.

    .venv/bin/python tests/benchmarks/bench_overhead.py                  # 3 reps each, 150 steps
    .venv/bin/python tests/benchmarks/bench_overhead.py --reps 5 --steps 100

Both sides train the same miniature model (the demo's tiny TinyLlama, 4-bit NF4 + LoRA, built
by slothlab's own ``recipes.train._tiny_model_folder`` into a temporary cache) on the same
tokenized data (``recipes.data.load_examples`` + ``prepare``), for the same number of steps with
the same batch size, learning rate, schedule, seed and ``adamw_8bit`` optimizer:

* **bare**: a plain TRL trainer built here with a minimal ``SFTConfig`` (no eval, no checkpoint
  saving, ``report_to="none"``) and no callbacks but a timer. The trainer class is
  ``recipes.train.trainer_class("cpu")``: TRL 1.15's ``SFTTrainer.compute_loss`` goes through a
  fused Triton LM-head kernel, and Triton has no CPU driver, so a stock ``SFTTrainer`` cannot
  train on a CPU at all. slothlab's CPU subclass only swaps the loss for the model's own
  causal-LM cross-entropy; both sides use it, so the comparison is like for like.
* **slothlab**: ``recipes.train.run(recipe, RunOptions(...))``, the path ``slothlab --recipe demo``
  takes, with ``eval_steps=0``, ``val_fraction=0`` (no evaluation), ``save_steps`` larger than the
  run (no periodic checkpoints) so that only the orchestration differs: the event callback, the
  JSON-lines event writer, per-step memory sampling and token counting.

``run()`` also loads the data and the model and saves the adapter, so only the training phase
is compared: the time from the first to the last logged step (``logging_steps`` apart), taken
from ``step`` events by a ``RunOptions.listeners`` entry on the slothlab side and from
``on_log`` by a ``TrainerCallback`` on the bare side. Runs alternate (bare, slothlab, then
slothlab, bare, ...) so drift in machine speed hits both sides alike. Everything is written
under a temporary directory that is removed at the end.
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
from recipes.registry import find_recipe
from recipes.schema import Recipe, load_recipe
from recipes.train import PROJECT_ROOT


@dataclass
class Timing:
    side: str
    first_step: int
    last_step: int
    seconds: float
    final_loss: float | None

    @property
    def steps_per_second(self) -> float:
        return (self.last_step - self.first_step) / self.seconds


def demo_recipe(steps: int, logging_steps: int) -> Recipe:
    return load_recipe(find_recipe("demo"), overrides=[
        f"max_steps={steps}", f"logging_steps={logging_steps}", "eval_steps=0",
        "val_fraction=0", f"save_steps={steps * 100}",
    ])


def prepare_inputs(recipe: Recipe, cache: Path, scratch: Path) -> tuple[Path, object]:
    """The tiny model folder and the tokenized train split, built as recipes/train.py builds them."""
    import torch

    from recipes.backends import reference
    from recipes.data import load_examples, prepare
    from recipes.train import _tiny_model_folder, data_source, load_model

    source = data_source(recipe)
    examples, skipped, n_rows = load_examples(recipe, source, base_dirs=[PROJECT_ROOT])
    scratch.mkdir(parents=True, exist_ok=True)
    folder = _tiny_model_folder(recipe, examples, cache, scratch)
    _, tokenizer = load_model(reference, folder, recipe, "cuda" if torch.cuda.is_available()
                              else "cpu")
    data = prepare(recipe, tokenizer, examples, skipped, n_rows, source=source)
    return folder, data


def bare_run(recipe: Recipe, folder: Path, data, out_dir: Path) -> Timing:
    """A plain TRL training script: load, SFTConfig, trainer, train. Nothing else."""
    from datasets import Dataset
    from transformers import PrinterCallback, TrainerCallback
    from trl import SFTConfig

    from recipes.backends import reference
    from recipes.train import load_model, trainer_class

    model, tokenizer = load_model(reference, folder, recipe, "cpu")
    train = Dataset.from_dict({"input_ids": [t.input_ids for t in data.train],
                               "labels": [t.labels for t in data.train]})
    marks: list[tuple[int, float]] = []

    class LogTimer(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs and "loss" in logs:
                marks.append((state.global_step, time.perf_counter()))

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
    trainer.train()
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return Timing("bare", s0, s1, t1 - t0, losses[-1] if losses else None)


def slothlab_run(recipe: Recipe, runs_root: Path, cache: Path) -> Timing:
    from recipes.train import RunOptions, run

    marks: list[tuple[int, float]] = []
    final: list[float | None] = [None]

    def listen(event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            marks.append((event.step, time.perf_counter()))
        elif isinstance(event, ev.Finished):
            final[0] = event.final_loss

    run(recipe, RunOptions(backend="reference", runs_root=runs_root, cache_dir=cache,
                           listeners=[listen]))
    (s0, t0), (s1, t1) = marks[0], marks[-1]
    return Timing("slothlab", s0, s1, t1 - t0, final[0])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per side (default 3)")
    parser.add_argument("--steps", type=int, default=150, help="training steps per run")
    parser.add_argument("--logging-steps", type=int, default=5)
    args = parser.parse_args()

    from recipes.train import _quiet_libraries

    _quiet_libraries()
    started = time.perf_counter()
    print(f"load average at start: {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores "
          "(other processes on the machine skew the figures)", flush=True)
    recipe = demo_recipe(args.steps, args.logging_steps)
    results: list[Timing] = []
    with tempfile.TemporaryDirectory(prefix="slothlab-bench-") as tmp:
        root = Path(tmp)
        cache, runs_root = root / "cache", root / "runs"
        folder, data = prepare_inputs(recipe, cache, root / "inputs")
        print(f"demo recipe: {len(data.train)} train examples, batch {recipe.batch_size}, "
              f"{recipe.max_steps} steps, logging every {recipe.logging_steps}, "
              f"optim {recipe.optimizer}", flush=True)
        for rep in range(args.reps):
            order = ("bare", "slothlab") if rep % 2 == 0 else ("slothlab", "bare")
            for side in order:
                if side == "bare":
                    timing = bare_run(recipe, folder, data, root / f"bare-{rep}")
                else:
                    timing = slothlab_run(recipe, runs_root, cache)
                results.append(timing)
                print(f"  rep {rep + 1} {side:8s}: steps {timing.first_step}->{timing.last_step} "
                      f"in {timing.seconds:6.2f} s = {timing.steps_per_second:6.2f} steps/s, "
                      f"final loss {timing.final_loss:.4f}", flush=True)

    rates = {side: [t.steps_per_second for t in results if t.side == side]
             for side in ("bare", "slothlab")}
    med = {side: statistics.median(r) for side, r in rates.items()}
    best = {side: max(r) for side, r in rates.items()}
    print()
    print(f"{'side':10s} {'median steps/s':>15s} {'best steps/s':>13s}  per run")
    for side in ("bare", "slothlab"):
        runs = " ".join(f"{r:.2f}" for r in rates[side])
        print(f"{side:10s} {med[side]:15.2f} {best[side]:13.2f}  {runs}")
    ratio_med = med["slothlab"] / med["bare"]
    ratio_best = best["slothlab"] / best["bare"]
    verdict = "OK" if ratio_med >= 0.95 else "BELOW TARGET"
    print(f"ratio slothlab/bare: median {ratio_med:.3f}, best {ratio_best:.3f} "
          f"(target >= 0.95: {verdict})")
    print(f"total wall time {time.perf_counter() - started:.0f} s, "
          f"load average at end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
