"""The unsloth backend for real, on a CPU (unsloth 2026.10.9's own CPU backend).

Every run here happens in a child process: importing unsloth patches TRL and transformers for
the whole process, which would silently change every later test. Checked: the demo end to end,
its settings as they really ran, bit-exact resume, agreement with the reference backend on the
same demo (the first steps' losses, the base answers, where both end), and each recipe's tiny
mode for a few steps.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from tests.helpers import slothlab_env

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[1]
# fp32 on both backends, same data order and seed. Unsloth's CPU backend computes the loss with
# a chunked cross-entropy (the reference: the model's own), so the sums differ in the last bits:
# ~1e-7 at step 1. 8-bit optimizer states round those differences to whole quantisation steps
# now and then, so the two trajectories drift apart slowly (measured on the 300-step demo: under
# 5e-5 to step 55, up to 2.3e-2 on single steps near the end) while ending equally well
# (eval loss 1.567 vs 1.577, ROUGE-L 0.70 vs 0.68).
FIRST_STEP_RTOL = 1e-6
EARLY_STEPS, EARLY_RTOL = 50, 1e-4
END_EVAL_LOSS_RTOL = 0.03
END_ROUGE_ATOL = 0.05


def events(run_dir: Path) -> list[ev.Event]:
    return ev.read_events(Path(run_dir) / "events.jsonl")


def of_type(run_dir: Path, kind: str) -> list:
    return [e for e in events(run_dir) if e.type == kind]


@pytest.fixture(scope="module")
def unsloth_demo(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`slothlab --recipe demo --backend unsloth`, the whole demo."""
    root = tmp_path_factory.mktemp("unsloth-demo")
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "--recipe", "demo", "--backend",
                           "unsloth", "--runs-dir", str(root / "runs")], capture_output=True,
                          text=True, env=slothlab_env(root / "cache"), timeout=900, cwd=root)
    assert proc.returncode == 0, proc.stderr[-3000:]
    [run_dir] = list((root / "runs").iterdir())
    return run_dir


def child(mode: str, tmp: Path) -> dict[str, str]:
    proc = subprocess.run([sys.executable, str(ROOT / "tests" / "unsloth_child.py"), mode,
                           str(tmp / "runs"), str(tmp / "cache")], capture_output=True,
                          text=True, timeout=1800, cwd=tmp)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_demo_runs_end_to_end_through_unsloth(unsloth_demo: Path) -> None:
    started = of_type(unsloth_demo, "run_started")[0]
    assert started.backend == "unsloth" and "Unsloth's CPU backend" in started.backend_reason
    kinds = {e.type for e in events(unsloth_demo)}
    assert {"preflight", "step", "eval", "checkpoint", "metrics", "finished"} <= kinds
    assert all(e.samples for e in of_type(unsloth_demo, "eval")), "greedy samples at each eval"
    assert [m.stage for m in of_type(unsloth_demo, "metrics")] == ["base", "finetuned"]
    assert (unsloth_demo / "adapter" / "adapter_model.safetensors").is_file()
    report = json.loads((unsloth_demo / "report.json").read_text(encoding="utf-8"))
    assert report["metrics"]["rougeL"]["finetuned"] > report["metrics"]["rougeL"]["base"]


def test_settings_are_read_from_what_ran(unsloth_demo: Path) -> None:
    """Unsloth's import turns adamw_8bit into adamw_torch_fused and TRL casts the adapters to
    bf16: both are undone, and the preflight says so; nothing is echoed from the recipe."""
    preflight = of_type(unsloth_demo, "preflight")[0]
    settings = preflight.settings
    assert settings["backend"] == "unsloth"
    assert settings["optimizer"] == "bitsandbytes AdamW (8-bit state)"
    assert settings["compute dtype"] == "float32"
    assert settings["weights"].startswith("NF4 4-bit, double quantisation")
    assert settings["LoRA dtype"] == "float32"
    assert settings["loss"] == "Unsloth's chunked cross-entropy (CPU)"
    assert "no fused kernels" in settings["fused kernels"]
    changes = " ".join(preflight.changes)
    assert "rewrote optim adamw_8bit to adamw_torch_fused" in changes
    assert "compute_dtype auto: float32" in changes
    md = (unsloth_demo / "report.md").read_text(encoding="utf-8")
    assert "| optimizer | bitsandbytes AdamW (8-bit state) |" in md


def test_backends_agree_on_the_demo(unsloth_demo: Path, demo_run) -> None:
    reference = demo_run[0]
    ref = {s.step: s.loss for s in of_type(reference, "step")}
    fast = {s.step: s.loss for s in of_type(unsloth_demo, "step")}
    assert sorted(ref) == sorted(fast)
    first = abs(fast[1] - ref[1]) / ref[1]
    assert first <= FIRST_STEP_RTOL, f"same weights, same batch: step 1 differs by {first:.2e}"
    early = max(abs(fast[s] - ref[s]) / abs(ref[s]) for s in ref if s <= EARLY_STEPS)
    assert early <= EARLY_RTOL, f"steps 1-{EARLY_STEPS} differ by up to {early:.2e}"


def test_backends_end_equally_well_on_the_demo(unsloth_demo: Path, demo_run) -> None:
    reports = [json.loads((run / "report.json").read_text(encoding="utf-8"))
               for run in (demo_run[0], unsloth_demo)]
    ref, fast = (r["metrics"] for r in reports)
    # the base model (adapter off) is the same model on both: its answers and loss are equal
    assert [s["base"] for s in reports[0]["samples"]] == [s["base"] for s in reports[1]["samples"]]
    assert fast["eval_loss"]["base"] == pytest.approx(ref["eval_loss"]["base"], rel=1e-6)
    end = abs(fast["eval_loss"]["finetuned"] - ref["eval_loss"]["finetuned"])
    assert end <= END_EVAL_LOSS_RTOL * ref["eval_loss"]["finetuned"], f"eval loss differs by {end}"
    gap = abs(fast["rougeL"]["finetuned"] - ref["rougeL"]["finetuned"])
    assert gap <= END_ROUGE_ATOL, f"fine-tuned ROUGE-L differs by {gap:.3f}"


def test_resume_through_unsloth_is_bit_exact(tmp_path: Path) -> None:
    runs = child("resume", tmp_path)
    straight = {s.step: s.loss for s in of_type(Path(runs["straight"]), "step")}
    resumed_events = events(Path(runs["resumed"]))
    assert [e.type for e in resumed_events if e.type in ev.TERMINAL] == ["stopped", "finished"]
    resumed = {s.step: s.loss for s in resumed_events if s.type == "step"}
    assert sorted(resumed) == list(range(1, 13))
    assert [resumed[s] for s in range(7, 13)] == [straight[s] for s in range(7, 13)]


def test_every_recipe_trains_through_unsloth(tmp_path: Path) -> None:
    runs = child("recipes", tmp_path)
    assert set(runs) == {"finetome-llama3.2-3b", "medqa-tinyllama", "saudial-lfm2",
                         "inkuba-multitask", "gemma3-scratch"}
    for name, run_dir in runs.items():
        run_dir = Path(run_dir)
        assert events(run_dir)[-1].type == "finished", (name, events(run_dir)[-1])
        assert (run_dir / "adapter" / "adapter_model.safetensors").is_file(), name
        backends = {e.stage: e.settings["backend"] for e in of_type(run_dir, "preflight")}
        if name == "gemma3-scratch":
            assert backends["finetune"] == "unsloth"
            assert backends["pretrain"].startswith("reference (full-parameter")
        else:
            assert backends == {"": "unsloth"}, name


def test_auto_on_a_cpu_is_the_reference_backend_with_bitsandbytes_adamw8bit(runs_dir, tiny_cache):
    """In a process where unsloth was not chosen, nothing is patched: adamw_8bit is
    bitsandbytes' 8-bit AdamW, and unsloth is never imported."""
    from recipes.registry import bundled
    from recipes.runner import RunOptions, run
    from recipes.schema import load_recipe

    recipe = load_recipe(bundled()["demo"], overrides=["max_steps=2", "eval_steps=0",
                                                       "eval_samples=2", "max_new_tokens=4"])
    run_dir = run(recipe, RunOptions(runs_root=runs_dir, cache_dir=tiny_cache))
    preflight = of_type(run_dir, "preflight")[0]
    assert of_type(run_dir, "run_started")[0].backend == "reference"
    assert preflight.settings["optimizer"] == "bitsandbytes AdamW (8-bit state)"
    assert not any("optim" in change for change in preflight.changes)
    assert "unsloth" not in sys.modules
