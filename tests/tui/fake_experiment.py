"""A stand-in for `slothlab experiment ... --json`: the real experiment code (validation, skip
and resume, the shared base evaluation, the table) with a scripted run in place of training.

Driven by FAKE_STEPS (steps per variant, default the recipe's max_steps) and FAKE_RATE (steps
per second, default 200). SIGINT stops the running variant with a checkpoint, as the real run
does; the experiment then ends `stopped` and exits 130.

    python tests/tui/fake_slothlab.py experiment exp.yaml --json --runs-dir /tmp/runs
"""

from __future__ import annotations

import json
import math
import os
import time
from pathlib import Path

from recipes import events as ev
from recipes import runner
from recipes.rundir import CHECKPOINTS, DONE, EVENTS_FILE, RECIPE_FILE, new_run_dir, write_json
from recipes.schema import dump_recipe
from tests.helpers import whole_checkpoint


def fake_loss(step: int, learning_rate: float) -> float:
    return 0.8 + 6.0 * math.exp(-step * learning_rate * 200 / 12)


def fake_run(recipe, options) -> Path:
    """What recipes.runner.run does, minus the model: a run directory, events, checkpoints."""
    runner.check_ablation(recipe, options)
    steps = int(os.environ.get("FAKE_STEPS", recipe.max_steps or 20))
    rate = float(os.environ.get("FAKE_RATE", "200"))
    start = 0
    if options.resume_dir is not None:
        run_dir = options.resume_dir
        done = sorted(int(p.name.rsplit("-", 1)[1]) for p in (run_dir / CHECKPOINTS).glob("c*"))
        start = done[-1] if done else 0
    else:
        run_dir = new_run_dir(options.runs_root, recipe.name)
        (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe), encoding="utf-8")
    writer = ev.EventWriter(run_dir / EVENTS_FILE, echo=options.echo, variant=options.variant)
    for listener in options.listeners:
        writer.subscribe(listener)
    stop = options.stop
    restore = stop.install()
    try:
        writer.emit(ev.RunStarted(run_dir=str(run_dir), recipe=recipe.name, backend="reference",
                                  backend_reason="fake", device="CPU (fake)", tiny=recipe.tiny,
                                  resumed_from_step=start, pid=os.getpid()))
        writer.emit(ev.Preflight(splits={"train": 8, "val": 2, "test": 2}, tokens_min=5,
                                 tokens_median=6.0, tokens_max=9, trained_token_share=0.3,
                                 truncated=0, no_trained_tokens=0, max_seq_length=128,
                                 total_steps=steps))
        base = run_dir / "eval" / "base-fake.json"
        if not base.exists():  # computed here, unless the experiment shared an earlier one
            base.parent.mkdir(exist_ok=True)
            base.write_text(json.dumps({"computed_by": options.variant}), encoding="utf-8")
        writer.emit(ev.Metrics(stage="base", values={"rougeL": 0.1}))
        lr = recipe.learning_rate
        for step in range(start + 1, steps + 1):
            time.sleep(1 / rate)
            writer.emit(ev.Step(step=step, total_steps=steps, epoch=step / 10,
                                loss=fake_loss(step, lr), learning_rate=lr, grad_norm=1.0,
                                tokens_per_second=5000.0,
                                memory=ev.Memory("rss", 1000.0, 1100.0 + step, 24000.0)))
            if stop.requested and step < steps:
                path = run_dir / CHECKPOINTS / f"checkpoint-{step}"
                whole_checkpoint(path)  # what a resume checks, and the completion marker
                writer.emit(ev.Checkpoint(step=step, path=str(path)))
                writer.emit(ev.Stopped(step=step, checkpoint=str(path),
                                       resume_command=f"slothlab --resume {run_dir}"))
                return run_dir
        final = fake_loss(steps, lr)
        writer.emit(ev.Eval(step=steps, loss=final + 0.1, perplexity=math.exp(final + 0.1)))
        tuned = 0.1 + lr * 100
        (run_dir / "report.json").write_text(json.dumps({"metrics": {"rougeL": {
            "base": 0.1, "finetuned": tuned, "change": tuned - 0.1,
            "relative": (tuned - 0.1) / 0.1, "lower_is_better": False}}}), encoding="utf-8")
        write_json(run_dir / DONE, {"stage": "finetune", "steps": steps})
        writer.emit(ev.Finished(step=steps, final_loss=final, adapter_dir=str(run_dir),
                                seconds=steps / rate))
        return run_dir
    finally:
        restore()
        writer.close()


def main(argv: list[str]) -> int:
    runner.run = fake_run  # recipes.experiment looks it up when each variant starts
    from tui.experiment_cli import main as experiment_main

    return experiment_main(argv)
