"""A stand-in for `slothlab --json` that emits a scripted event stream (no torch, instant).

Same arguments as the real command (--recipe, --set, --tiny, --json, --runs-dir, --resume,
and `check --device --json`; `chat` is fake_chat.py); the same run directory layout; the same
exit codes and SIGINT behaviour (finish the step, checkpoint, `stopped`, exit 130). Driven by
environment variables:

    FAKE_STEPS=40          total steps            FAKE_RATE=200     step events per second
    FAKE_EVAL_EVERY=10     eval (with samples)    FAKE_MODE=ok | bad | fail | crash | hang
    FAKE_REPORT=1          write report.json      FAKE_DEVICE=cpu | gpu | broken

    python tests/tui/fake_slothlab.py --recipe demo --json --runs-dir /tmp/runs
    python tests/tui/fake_slothlab.py data --recipe demo --json      # FAKE_DATA=ok | error
"""

from __future__ import annotations

import argparse
import json
import math
import os
import signal
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from recipes import events as ev  # noqa: E402
from recipes.registry import find_recipe  # noqa: E402
from recipes.rundir import CHECKPOINTS, EVENTS_FILE, RECIPE_FILE, new_run_dir  # noqa: E402
from recipes.schema import dump_recipe, load_recipe  # noqa: E402
from tests.helpers import whole_checkpoint  # noqa: E402

stop_requested = False


def on_sigint(signum, frame) -> None:
    global stop_requested
    stop_requested = True


def device(kind: str) -> int:
    if kind == "broken":
        print("Traceback (most recent call last):\nModuleNotFoundError: No module named "
              "'kernels_check.cli'", file=sys.stderr)
        return 1
    gpu = kind == "gpu"
    print(json.dumps({
        "torch": "2.14.1", "cuda_available": gpu, "gpu_name": "NVIDIA GeForce RTX 3060" if gpu
        else None, "vram_total_gib": 12.0 if gpu else None, "vram_free_gib": 11.2 if gpu else None,
        "bf16": gpu, "unsloth": "2026.10.9", "unsloth_importable": True,
        "backend": "unsloth" if gpu else "reference",
        "backend_reason": "CUDA device and unsloth importable" if gpu
        else "no CUDA device: reference backend (transformers + bitsandbytes + peft)"}))
    return 0


def loss_at(step: int) -> float:
    return 0.8 + 6.0 * math.exp(-step / 12) + 0.15 * math.sin(step)


def data_preview(argv: list[str]) -> int:
    """`slothlab data --recipe FILE --json`: a fixed preview naming the recipe's dataset;
    FAKE_DATA=error refuses it as the real command refuses bad data (exit 2)."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("-n", type=int, default=3)
    args = parser.parse_args(argv)
    recipe = load_recipe(find_recipe(args.recipe))
    source = recipe.sample_dataset if recipe.tiny and recipe.sample_dataset else recipe.dataset
    if os.environ.get("FAKE_DATA") == "error":
        print(json.dumps({"error": {"what": "line 3, column 'output': empty answer", "where":
                                    source, "fix": "--set max_dropped_fraction=0.34"}}))
        return 2
    print(json.dumps({
        "recipe": recipe.name, "source": source, "tiny": recipe.tiny, "tokenizer": "fake",
        "layout": "sharegpt", "columns": {"conversations": "conversations"},
        "preflight": {"rows": 253, "examples": 253, "splits": {"train": 203, "val": 25,
                                                                "test": 25},
                      "tokens_min": 25, "tokens_median": 27.5, "tokens_max": 49,
                      "trained_token_share": 0.28, "max_seq_length": recipe.max_seq_length},
        "notes": [f"read {source}"],
        "examples": [{"row": 1, "where": "line 1", "tokens": 12, "trained_tokens": 4,
                      "truncated": False, "parts": [
                          {"text": "<|user|>\nWhat is 6 plus 2?</s>\n<|assistant|>\n",
                           "trained": False, "tokens": 8},
                          {"text": "6 plus 2 is 8.</s>", "trained": True, "tokens": 4}]}]}))
    return 0


def main(argv: list[str]) -> int:
    if argv[:1] == ["check"]:
        return device(os.environ.get("FAKE_DEVICE", "cpu"))
    if argv[:1] == ["chat"]:
        from fake_chat import main as chat  # this folder is on sys.path: the script's own

        return chat(argv[1:])
    if argv[:1] == ["experiment"]:
        from fake_experiment import main as experiment  # the real experiment, scripted runs

        return experiment(argv[1:])
    if argv[:1] == ["export"]:
        from fake_export import main as export_main  # tests/tui/fake_export.py

        return export_main(argv[1:])
    if argv[:1] == ["data"]:
        return data_preview(argv[1:])
    parser = argparse.ArgumentParser()
    parser.add_argument("--recipe")
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    parser.add_argument("--tiny", action="store_true")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--runs-dir", type=Path, default=Path("runs"))
    parser.add_argument("--resume", type=Path)
    args = parser.parse_args(argv)
    mode = os.environ.get("FAKE_MODE", "ok")
    steps = int(os.environ.get("FAKE_STEPS", "40"))
    rate = float(os.environ.get("FAKE_RATE", "200"))
    eval_every = int(os.environ.get("FAKE_EVAL_EVERY", "10"))
    if mode == "bad":
        print("error: demo.yaml:12: field 'learning_rate' = 'fast': expected a number\n"
              "  → Peak learning rate. (default: 0.0002)", file=sys.stderr)
        return 2
    print("fake slothlab: loading (library chatter goes to stderr)", file=sys.stderr, flush=True)
    start_step = 0
    if args.resume is not None:
        run_dir = args.resume
        recipe = load_recipe(run_dir / RECIPE_FILE)
        done = sorted(int(p.name.rsplit("-", 1)[1]) for p in (run_dir / CHECKPOINTS).glob("c*"))
        start_step = done[-1] if done else 0
    else:
        overrides = [*args.overrides, *(["tiny=true"] if args.tiny else [])]
        recipe = load_recipe(find_recipe(args.recipe), overrides=overrides)
        run_dir = new_run_dir(args.runs_dir, recipe.name)
        (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe), encoding="utf-8")
    steps = recipe.max_steps if "FAKE_STEPS" not in os.environ and recipe.max_steps else steps
    writer = ev.EventWriter(run_dir / EVENTS_FILE, echo=sys.stdout)
    signal.signal(signal.SIGINT, on_sigint)
    writer.emit(ev.RunStarted(run_dir=str(run_dir), recipe=recipe.name, backend="reference",
                              backend_reason="no CUDA device: reference backend (fake)",
                              device="CPU (fake)", tiny=recipe.tiny,
                              resumed_from_step=start_step, pid=os.getpid()))
    writer.emit(ev.Preflight(splits={"train": 203, "val": 25, "test": 25}, tokens_min=25,
                             tokens_median=27.5, tokens_max=49, trained_token_share=0.28,
                             truncated=0, no_trained_tokens=0, max_seq_length=128,
                             total_steps=steps))

    def checkpoint(step: int) -> None:
        path = run_dir / CHECKPOINTS / f"checkpoint-{step}"
        whole_checkpoint(path)  # the files a resume checks, and the completion marker
        writer.emit(ev.Checkpoint(step=step, path=str(path)))

    for step in range(start_step + 1, steps + 1):
        time.sleep(1 / rate)
        if mode == "hang" and step > start_step + 2:
            signal.signal(signal.SIGINT, signal.SIG_IGN)
            time.sleep(3600)
        writer.emit(ev.Step(step=step, total_steps=steps, epoch=step / 26, loss=loss_at(step),
                            learning_rate=3e-3 * (1 - step / steps), grad_norm=2.5 / (1 + step / 10),
                            tokens_per_second=7000 + 10 * step,
                            memory=ev.Memory(kind="rss", now_mb=1100 + step, peak_mb=1180 + step,
                                             total_mb=24105.0)))
        if mode == "crash" and step == 3:
            print("Traceback (most recent call last):\n  File \"train.py\", line 1\n"
                  "RuntimeError: segfault in a kernel", file=sys.stderr)
            return 1
        if mode == "fail" and step == 3:
            writer.emit(ev.Failed(error="OutOfMemoryError: CUDA out of memory. Tried to allocate "
                                  "2.00 GiB", advice="CUDA ran out of memory: lower batch_size or "
                                  "max_seq_length, keep gradient_checkpointing on", step=step))
            return 1
        if eval_every and step % eval_every == 0:
            writer.emit(ev.Eval(step=step, loss=loss_at(step) + 0.2,
                                perplexity=math.exp(loss_at(step) + 0.2), samples=[
                                    ev.Sample(prompt="What is the capital of France?",
                                              reference="Paris.", output=f"Paris (step {step})."),
                                    ev.Sample(prompt="Name a primary colour.", reference="Red.",
                                              output="Blue is one.")]))
        if stop_requested:
            checkpoint(step)
            writer.emit(ev.Stopped(step=step, checkpoint=str(run_dir / CHECKPOINTS /
                                                             f"checkpoint-{step}"),
                                   resume_command=f"slothlab --resume {run_dir}"))
            return 130
    checkpoint(steps)
    writer.emit(ev.Metrics(stage="base", values={"rouge_l": 0.12, "exact_match": 0.0}))
    writer.emit(ev.Metrics(stage="finetuned", values={"rouge_l": 0.41, "exact_match": 0.2}))
    (run_dir / "adapter").mkdir(exist_ok=True)
    if os.environ.get("FAKE_REPORT") == "1":
        (run_dir / "report.json").write_text(json.dumps({
            "metrics": {"rouge_l": {"base": 0.12, "finetuned": 0.41, "change": 0.29,
                                    "relative": 2.42}},
            "samples": [{"prompt": "What is the capital of France?", "reference": "Paris.",
                         "base": "France is a country.", "finetuned": "Paris."}],
            "artifacts": {"adapter": str(run_dir / "adapter")}}), encoding="utf-8")
    writer.emit(ev.Finished(step=steps, final_loss=loss_at(steps),
                            adapter_dir=str(run_dir / "adapter"), seconds=steps / rate))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
