"""TUI test fixtures: a fake `slothlab` command, a fake device probe and fit estimator, and
deterministic past runs written into a temporary working directory."""

from __future__ import annotations

import asyncio
import inspect
import json
import math
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.registry import bundled
from recipes.schema import Recipe, dump_recipe, load_recipe
from tests.helpers import whole_checkpoint
from tui.app import SlothlabApp
from tui.device import DeviceInfo
from tui.driver import DriverReport, Gpu
from tui.fit import Fit

HERE = Path(__file__).resolve().parent
FAKE_SLOTHLAB = (sys.executable, str(HERE / "fake_slothlab.py"))
T0 = 1795300000.0  # fixed event times: elapsed and ETA render the same on every run

GPU_12 = {"torch": "2.14.1", "cuda_available": True, "gpu_name": "NVIDIA GeForce RTX 3060",
          "vram_total_gib": 12.0, "vram_free_gib": 11.2, "bf16": True, "unsloth": "2026.10.9",
          "unsloth_importable": True, "backend": "unsloth",
          "backend_reason": "CUDA device and unsloth importable"}
# unsloth 2026.10.9 imports on a CPU (its CPU backend); auto still picks reference there.
CPU_ONLY = {"torch": "2.14.1", "cuda_available": False, "gpu_name": None,
            "vram_total_gib": None, "bf16": False, "unsloth": "2026.10.9",
            "unsloth_importable": True, "unsloth_problem": None,
            "backend": "reference",
            "backend_reason": "no CUDA device: reference backend (transformers + bitsandbytes)"}

# What the driver says (tui.driver.query_driver), for the same two machines.
DRIVER_12 = DriverReport(gpus=(Gpu("NVIDIA GeForce RTX 3060", 12.0, 11.2, "8.6"),),
                         driver_version="550.54.14", cuda_version="12.4", source="NVML")
NO_DRIVER = DriverReport(problem="no NVIDIA driver")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests (Pilot) in a fresh event loop; no plugin needed."""
    if not inspect.iscoroutinefunction(pyfuncitem.obj):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    asyncio.run(pyfuncitem.obj(**{name: pyfuncitem.funcargs[name] for name in names}))
    return True


def fake_fit(recipe: Recipe, vram_gib: float | None) -> Fit:
    """A deterministic stand-in for kernels_check.fit.estimate."""
    weights = 0.1 if recipe.tiny else 0.8
    activations = recipe.batch_size * recipe.max_seq_length / 1024
    lora = recipe.lora_r / 64
    total = weights + activations + lora + 0.5
    if vram_gib is None:  # no card to check against: the need, no verdict (as the real one)
        return Fit(verdict="unknown", total_gib=total, vram_gib=None,
                   components={"weights": weights, "activations": activations, "lora": lora,
                               "cuda_context": 0.5}, reason="no card size")
    vram = vram_gib
    verdict = "fits" if total < 0.8 * vram else "tight" if total <= vram else "does not fit"
    return Fit(verdict=verdict, total_gib=total, vram_gib=vram,
               components={"weights": weights, "activations": activations, "lora": lora,
                           "cuda_context": 0.5},
               max_batch_size=max(1, int((vram - weights - lora - 0.5) / (activations or 1)
                                         * recipe.batch_size)),
               advice="" if verdict == "fits" else "lower batch_size or max_seq_length")


def device_probe(raw: dict | None = None, error: str = "") -> Callable:
    """A stand-in for the full check (`slothlab check --device --json`)."""
    async def probe() -> DeviceInfo:
        return DeviceInfo(raw=dict(raw or {}), error=error)

    return probe


def driver_probe(report: DriverReport = NO_DRIVER, *, error: Exception | None = None
                 ) -> Callable:
    """A stand-in for the driver query (``tui.driver.query_driver``); ``error`` is raised."""
    async def probe() -> DriverReport:
        if error is not None:
            raise error
        return report

    return probe


@pytest.fixture(autouse=True)
def _isolate(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test in its own working directory, cache and (bundled-only, demo-only) catalog."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLOTHLAB_CACHE", str(tmp_path / "cache"))
    demo = bundled()["demo"]
    monkeypatch.setattr("tui.catalog.bundled", lambda: {"demo": demo})


@pytest.fixture()
def make_app(tmp_path: Path) -> Callable[..., SlothlabApp]:
    def make(**kwargs) -> SlothlabApp:
        options = dict(runs_dir=Path("runs"), saved_dir=Path("my_recipes"),
                       slothlab=FAKE_SLOTHLAB, device_probe=device_probe(CPU_ONLY),
                       driver_probe=driver_probe(NO_DRIVER), fit_estimator=fake_fit,
                       stop_grace=5.0)
        options.update(kwargs)
        return SlothlabApp(**options)

    return make


# -- deterministic past runs ---------------------------------------------------------------
def loss_at(step: int, speed: float = 1.0) -> float:
    return 0.9 + 6.0 * math.exp(-step * speed / 40) + 0.08 * math.sin(step / 3)


def write_run(runs: Path, name: str, *, steps: int, until: int, outcome: str,
              report: bool = False, every: int = 5, speed: float = 1.0,
              settings: dict | None = None) -> Path:
    """A run directory with events at fixed times: outcome finished | stopped | failed;
    ``settings``: recipe fields that differ from the demo's."""
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    recipe = load_recipe(bundled()["demo"])
    if settings:
        recipe = Recipe(**{**recipe.to_dict(), **settings})
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    rel = f"runs/{name}"
    t = T0
    out = [ev.RunStarted(run_dir=rel, recipe="demo", backend="reference",
                         backend_reason="no CUDA device: reference backend", device="CPU (2 cores)",
                         tiny=True, pid=0, time=t),
           ev.Preflight(splits={"train": 203, "val": 25, "test": 25}, tokens_min=25,
                        tokens_median=27.5, tokens_max=49, trained_token_share=0.28, truncated=0,
                        no_trained_tokens=0, max_seq_length=128, total_steps=steps, time=t + 3)]
    for step in range(every, until + 1, every):
        t = T0 + 3 + step * 0.05
        out.append(ev.Step(step=step, total_steps=steps, epoch=step / 26,
                           loss=loss_at(step, speed), learning_rate=3e-3 * (1 - step / steps), grad_norm=2.0 / (1 + step / 50),
                           tokens_per_second=7400.0,
                           memory=ev.Memory("rss", 1150.0 + step / 3, 1210.0 + step / 3, 24105.0),
                           time=t))
        if step % 100 == 0:
            out.append(ev.Eval(step=step, loss=loss_at(step, speed) + 0.25, perplexity=math.exp(
                loss_at(step, speed) + 0.25), samples=[
                ev.Sample("What is the capital of France?", "Paris.", "Paris is the capital."),
                ev.Sample("Name a primary colour.", "Red.", "Blue.")], time=t + 0.01))
            out.append(ev.Checkpoint(step=step, path=f"{rel}/checkpoints/checkpoint-{step}",
                                     time=t + 0.02))
            whole_checkpoint(run_dir / "checkpoints" / f"checkpoint-{step}")
    if outcome == "finished":
        out.append(ev.Metrics(stage="base", values={"rouge_l": 0.121, "exact_match": 0.0},
                              time=t + 1))
        out.append(ev.Metrics(stage="finetuned", values={"rouge_l": 0.412, "exact_match": 0.2},
                              time=t + 2))
        out.append(ev.Finished(step=until, final_loss=loss_at(until, speed),
                               adapter_dir=f"{rel}/adapter", seconds=t + 3 - T0, time=t + 3))
        (run_dir / "adapter").mkdir()
    elif outcome == "stopped":
        whole_checkpoint(run_dir / "checkpoints" / f"checkpoint-{until}")
        out.append(ev.Checkpoint(step=until, path=f"{rel}/checkpoints/checkpoint-{until}",
                                 time=t + 0.5))
        out.append(ev.Stopped(step=until, checkpoint=f"{rel}/checkpoints/checkpoint-{until}",
                              resume_command=f"slothlab --resume {rel}", time=t + 1))
    elif outcome == "failed":
        out.append(ev.Failed(error="OutOfMemoryError: CUDA out of memory. Tried to allocate "
                                   "2.00 GiB", advice="CUDA ran out of memory: lower batch_size or "
                                   "max_seq_length, keep gradient_checkpointing on", step=until,
                             time=t + 1))
    (run_dir / "events.jsonl").write_text("".join(e.to_json() + "\n" for e in out),
                                          encoding="utf-8")
    if report:
        (run_dir / "report.json").write_text(json.dumps({
            # as recipes/report.py writes it: the fixed eval set drawn from the test split
            "eval_set": {"split": "test", "size": 25, "max_new_tokens": 32,
                         "decoding": "greedy"},
            "metrics": {"rouge_l": {"base": 0.121, "finetuned": 0.412, "change": 0.291,
                                    "relative": 2.405},
                        "exact_match": {"base": 0.0, "finetuned": 0.2, "change": 0.2,
                                        "relative": None}},
            "lengths": {"base": 31.2, "finetuned": 9.8},
            "samples": [{"prompt": "What is the capital of France?", "reference": "Paris.",
                         "base": "The capital of France is a city in Europe with many",
                         "finetuned": "Paris."},
                        {"prompt": "Name a primary colour.", "reference": "Red.",
                         "base": "A primary colour is a colour that", "finetuned": "Blue."}],
            "artifacts": {"adapter": f"{rel}/adapter", "report_md": f"{rel}/report.md",
                          "loss_png": f"{rel}/loss.png"}}), encoding="utf-8")
        (run_dir / "report.md").write_text("# report\n", encoding="utf-8")
    return run_dir


def write_full_recipe(name: str = "full", **fields) -> Path:
    """A saved, non-tiny recipe (a hub dataset, tiny overrides) in ./my_recipes."""
    recipe = load_recipe(bundled()["demo"])
    data = {**recipe.to_dict(), "name": name, "tiny": False, "dataset": "someone/chat-data",
            "sample_dataset": "data/demo_qa.jsonl", "max_steps": 0, "epochs": 1.0,
            "learning_rate": 2e-4, "batch_size": 4,
            "tiny_overrides": {"max_steps": "7", "learning_rate": "3e-3", "batch_size": "8"},
            **fields}
    path = Path("my_recipes") / f"{name}.yaml"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(dump_recipe(Recipe(**data)), encoding="utf-8")
    return path


@pytest.fixture()
def past_runs(tmp_path: Path) -> dict[str, Path]:
    runs = Path("runs")
    return {
        "finished": write_run(runs, "20261121-101500-demo", steps=300, until=300,
                              outcome="finished", report=True),
        "stopped": write_run(runs, "20261121-103000-demo", steps=300, until=120,
                             outcome="stopped", speed=2.0,
                             settings={"learning_rate": 0.001, "lora_r": 8}),
        "failed": write_run(runs, "20261121-104500-demo", steps=300, until=15, outcome="failed"),
    }


def write_staged_run(runs: Path, name: str = "20261121-110000-gemma3-scratch") -> Path:
    """A finished multi-stage run (tokenizer → pretrain → finetune) with the events
    the staged runner (recipes/runner.py + recipes/stages/) emits: stage-tagged preflight, steps and evals, a metrics event per
    stage, base / fine-tuned metrics for the fine-tuning."""
    run_dir = runs / name
    run_dir.mkdir(parents=True)
    recipe = load_recipe(bundled()["gemma3-scratch"])
    (run_dir / "recipe.yaml").write_text(dump_recipe(recipe), encoding="utf-8")
    t = T0
    out: list[ev.Event] = [
        ev.RunStarted(run_dir=f"runs/{name}", recipe="gemma3-scratch", backend="reference",
                      backend_reason="multi-stage from-scratch pipeline", device="CPU (2 cores)",
                      tiny=True, pid=0, time=t),
        ev.Metrics(stage="tokenizer", values={"vocab_size": 512.0, "tokens_per_word/as": 2.41,
                                              "tokens_per_word/hi": 1.87}, time=t + 2)]
    for stage, steps, start, speed in (("pretrain", 60, 6.3, 1.5), ("finetune", 30, 3.2, 3.0)):
        t += 5
        out.append(ev.Preflight(splits={"train": 76, "val": 10, "test": 10}, tokens_min=9,
                                tokens_median=14.0, tokens_max=23, trained_token_share=1.0,
                                truncated=0, no_trained_tokens=0, max_seq_length=128,
                                total_steps=steps, stage=stage, time=t))
        for step in range(5, steps + 1, 5):
            t += 0.5
            loss = 1.0 + (start - 1.0) * math.exp(-step * speed / steps)
            out.append(ev.Step(step=step, total_steps=steps, epoch=step / 10, loss=loss,
                               learning_rate=1e-3 * (1 - step / steps), grad_norm=1.5 - step / 100,
                               tokens_per_second=2100.0, stage=stage,
                               memory=ev.Memory("rss", 900.0, 950.0, 24105.0), time=t))
            if step % 20 == 0 or step == steps:
                sample = (ev.Sample("আমি কালি", "বজাৰলৈ গৈছিলোঁ।", "বজাৰলৈ গৈছিলোঁ")
                          if stage == "pretrain" else
                          ev.Sample("Fill in each <mask>: আমি <mask> গৈছিলোঁ", "বজাৰলৈ", "বজাৰলৈ"))
                out.append(ev.Eval(step=step, loss=loss + 0.3, perplexity=math.exp(loss + 0.3),
                                   samples=[sample], stage=stage, time=t + 0.1))
        if stage == "pretrain":
            out.append(ev.Metrics(stage="pretrain", values={"eval_loss": 2.02,
                                                            "perplexity": 7.54}, time=t + 1))
    out.append(ev.Metrics(stage="base", values={"exact_match": 0.0, "chrf": 12.5}, time=t + 2))
    out.append(ev.Metrics(stage="finetuned", values={"exact_match": 0.4, "chrf": 48.1},
                          time=t + 3))
    out.append(ev.Finished(step=30, final_loss=1.3, adapter_dir=f"runs/{name}/adapter",
                           seconds=t + 4 - T0, time=t + 4))
    (run_dir / "adapter").mkdir()
    (run_dir / "events.jsonl").write_text("".join(e.to_json() + "\n" for e in out),
                                          encoding="utf-8")
    return run_dir
