"""`slothlab check`: the device report contract, kernel numerics (run for real, through the
Triton interpreter on a CPU), exit codes, the backend comparison, and the published figures.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from kernels_check import cli, compare, numerics, published
from kernels_check.device import DEVICE_FIELDS

ROOT = Path(__file__).resolve().parents[1]
SWITCHES = ("UNSLOTH_ALLOW_CPU", "TRITON_INTERPRET")


def _has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


# -- device report -------------------------------------------------------------------------------


def test_device_json_is_one_object_with_the_contract_fields(capsys):
    """`slothlab check --device --json` (the TUI's device panel): one JSON object, exit 0, and
    this process left as it was: unsloth is asked about in a child, no switch is set here."""
    before = set(sys.modules)
    assert cli.main(["--device", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert "unsloth" not in set(sys.modules) - before
    assert not any(name in os.environ for name in SWITCHES)
    assert isinstance(report, dict) and tuple(report) == DEVICE_FIELDS
    types = {"torch": str, "cuda_available": bool, "bf16": bool, "unsloth_importable": bool,
             "backend": str, "backend_reason": str}
    for key, tp in types.items():
        assert isinstance(report[key], tp), key
    for key in ("cuda_version", "gpu_name", "compute_capability", "bitsandbytes", "triton",
                "xformers", "unsloth", "unsloth_problem"):
        assert report[key] is None or isinstance(report[key], str), key
    for key in ("vram_total_gib", "vram_free_gib"):
        assert report[key] is None or isinstance(report[key], float), key
    assert report["backend"] in ("unsloth", "reference")
    if not report["cuda_available"]:
        assert report["backend"] == "reference" and "no CUDA device" in report["backend_reason"]
        assert report["vram_total_gib"] is None and report["gpu_name"] is None
        # unsloth 2026.10.9 imports without a GPU (its CPU backend); auto still picks reference
        assert report["unsloth_importable"] and report["unsloth_problem"] is None
        assert "--backend unsloth runs Unsloth's CPU backend" in report["backend_reason"]


def test_check_is_dispatched_from_slothlab():
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "check", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--device" in proc.stdout


# -- kernel numerics -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def kernel_results():
    results = numerics.run_numerics()
    assert not any(name in os.environ for name in SWITCHES), "switches leaked into the parent"
    return {r.name: r for r in results}


@pytest.mark.parametrize("name,description,cpu_expected", numerics.CHECKS,
                         ids=[c[0] for c in numerics.CHECKS])
def test_kernel_check(kernel_results, name, description, cpu_expected):
    result = kernel_results[name]
    assert result.status in ("passed", "failed", "skipped")
    assert result.status != "failed", f"{name} ({description}): {result.reason}"
    if result.status == "passed":
        assert result.max_abs_err is not None and result.max_abs_err <= result.tol
    else:
        assert result.reason, f"{name} skipped without a reason"
    if cpu_expected or _has_cuda():
        # known to run in the Triton interpreter (and everything runs on a GPU)
        assert result.status == "passed", f"{name}: {result.reason}"


def test_every_check_is_reported_once(kernel_results):
    assert list(kernel_results) == [name for name, _, _ in numerics.CHECKS]


def test_compare_fails_on_a_mismatch_and_on_nan():
    import torch

    ref = torch.ones(4, 4)
    ok = numerics._compare("x", [(ref + 1e-7, ref)], torch.float32, "")
    assert ok.status == "passed"
    off = numerics._compare("x", [(ref, ref), (ref * 1.01, ref)], torch.float32, "")
    assert off.status == "failed" and "1" in off.reason and off.max_abs_err > off.tol
    nan = numerics._compare("x", [(ref * float("nan"), ref)], torch.float32, "")
    assert nan.status == "failed"
    shape = numerics._compare("x", [(ref[:2], ref)], torch.float32, "")
    assert shape.status == "failed" and "shape" in shape.reason


def test_a_dead_check_process_fails_every_check():
    results = numerics.run_numerics(cuda=False, python="/bin/false")
    assert [r.status for r in results] == ["failed"] * len(numerics.CHECKS)
    assert "died" in results[0].reason


def test_unimportable_kernels_are_skipped_not_passed(tmp_path):
    """The child exits 3 when unsloth.kernels cannot be imported: every check is skipped."""
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'NotImplementedError: no accelerator' >&2\nexit 3\n")
    fake.chmod(0o755)
    results = numerics.run_numerics(cuda=False, python=str(fake))
    assert {r.status for r in results} == {"skipped"}
    assert "cannot be imported here: NotImplementedError: no accelerator" in results[0].reason


# -- the command line ----------------------------------------------------------------------------


def _fake_numerics(status: str):
    def run(**_):
        return [numerics.CheckResult("SwiGLU", "passed", 1e-7, 1e-5),
                numerics.CheckResult("RoPE", status, None, None, reason="because")]
    return run


@pytest.mark.parametrize("status,code", [("skipped", 0), ("failed", 1)])
def test_exit_status_follows_failed_kernel_checks(monkeypatch, capsys, status, code):
    monkeypatch.setattr(numerics, "run_numerics", _fake_numerics(status))
    assert cli.main(["--kernels", "--json"]) == code
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is (code == 0) and out["kernels"][1]["status"] == status


def test_table_output_names_each_check(monkeypatch, capsys):
    monkeypatch.setattr(numerics, "run_numerics", _fake_numerics("skipped"))
    assert cli.main(["--kernels"]) == 0
    out = capsys.readouterr().out
    assert "SwiGLU" in out and "skipped" in out and "because" in out


def test_fit_one_recipe_with_overrides(capsys):
    code = cli.main(["--recipe", "demo", "--set", "batch_size=4", "--vram", "6", "--json"])
    assert code == 0
    fit = json.loads(capsys.readouterr().out)["fit"]
    assert fit["vram_gib"] == 6 and len(fit["recipes"]) == 1
    row = fit["recipes"][0]
    assert row["recipe"] == "demo" and row["batch_size"] == 4 and row["verdict"] == "fits"


def test_fit_table_shows_components_for_one_recipe(capsys):
    assert cli.main(["--recipe", "demo", "--vram", "6"]) == 0
    out = capsys.readouterr().out
    assert "4-bit weights" in out and "offloaded checkpointing" in out


def test_bad_recipe_is_exit_2(capsys):
    assert cli.main(["--recipe", "no-such-recipe", "--vram", "6"]) == 2
    assert "unknown recipe" in capsys.readouterr().err


@pytest.mark.parametrize("size", ["-1", "0", "nan", "inf", "abc"])
def test_impossible_card_sizes_are_refused(capsys, size):
    with pytest.raises(SystemExit) as info:
        cli.main(["--recipe", "demo", "--vram", size])
    assert info.value.code == 2
    assert "--vram" in capsys.readouterr().err


def test_python_dash_m_help():
    proc = subprocess.run([sys.executable, "-m", "kernels_check", "--help"], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0 and "--vram" in proc.stdout and "--skip-kernels" in proc.stdout


# -- backend comparison --------------------------------------------------------------------------


@pytest.mark.slow
def test_compare_backends_trains_both_backends_on_a_cpu(tmp_path, monkeypatch):
    """Without a GPU: a short fp32 training of the demo through each backend (each in its own
    child process), the loss curves compared step by step."""
    monkeypatch.setenv("SLOTHLAB_CACHE", str(tmp_path / "cache"))
    result = compare.compare_backends(cuda=False, steps=4)
    assert result["status"] == "passed", result
    assert result["device"] == "cpu" and result["loss_rel_diff"] <= compare.CPU_LOSS_RTOL
    ref, fast = result["backends"]["reference"], result["backends"]["unsloth"]
    assert len(ref["losses"]) == len(fast["losses"]) == 4
    assert fast["settings"]["loss"] == "Unsloth's chunked cross-entropy (CPU)"
    assert ref["settings"]["optimizer"] == fast["settings"]["optimizer"] == \
        "bitsandbytes AdamW (8-bit state)"
    assert result["speedup"] > 0 and result["memory_ratio"] > 0


def test_cpu_comparison_fails_on_diverging_curves():
    run = {"losses": [2.0, 1.5, 1.2], "steps_per_second": 4.0, "peak_rss_gib": 1.0}
    same = compare.summarise_cpu({"reference": run, "unsloth": {**run, "steps_per_second": 2.0}}, 3)
    assert same["status"] == "passed" and same["speedup"] == 0.5
    apart = compare.summarise_cpu({"reference": run, "unsloth": {**run, "losses": [2.0, 1.5, 1.3]}},
                                  3)
    assert apart["status"] == "failed" and "differ" in apart["reason"]


def test_compare_summary_judges_the_first_loss():
    run = {"first_loss": 2.0, "losses": [2.0, 1.9], "tokens_per_second": 100.0,
           "peak_reserved_gib": 2.0}
    same = compare.summarise({"reference": run, "unsloth": {**run, "first_loss": 2.01,
                                                            "tokens_per_second": 200.0,
                                                            "peak_reserved_gib": 1.0}}, "m")
    assert same["status"] == "passed" and same["speedup"] == 2.0 and same["vram_ratio"] == 0.5
    far = compare.summarise({"reference": run, "unsloth": {**run, "first_loss": 2.5}}, "m")
    assert far["status"] == "failed" and "differs" in far["reason"]
    broken = compare.summarise({"reference": run, "unsloth": {"error": "OOM"}}, "m")
    assert broken["status"] == "failed" and "OOM" in broken["reason"]


@pytest.mark.slow
def test_reference_step_child_runs_on_a_cpu(tmp_path, monkeypatch):
    """The per-backend child, reference half, on the CPU: what --compare-backends runs twice."""
    monkeypatch.setenv("SLOTHLAB_CACHE", str(tmp_path / "cache"))
    run = compare._run_child("reference", str(compare.tiny_model_folder()), "cpu", 600)
    assert "error" not in run, run
    assert run["backend"] == "reference" and len(run["losses"]) == compare.STEPS
    assert all(loss == loss and loss > 0 for loss in run["losses"])  # finite, no NaN
    assert run["losses"][-1] < run["losses"][0]  # adamw_8bit steps move the adapters
    assert run["tokens_per_second"] > 0


@pytest.mark.gpu
def test_compare_backends_on_the_gpu():
    result = compare.compare_backends()
    assert result["status"] == "passed", result
    for run in result["backends"].values():
        assert run["tokens_per_second"] > 0 and run["peak_reserved_gib"] > 0


# -- published figures ---------------------------------------------------------------------------


def test_estimates_within_15_percent_of_the_figures_docs_claim():
    rows = {c.name: c for c in published.comparisons()}
    claimed = ["Llama-3.2-3B QLoRA (torchtune)", "Llama-3.2-3B QLoRA minimum (Unsloth)",
               "Llama-3.1-8B r=32 at 2,972 tokens on 8 GB (Unsloth)",
               "Llama-3.1-8B r=32 at 21,848 tokens on 12 GB (Unsloth)"]
    for name in claimed:
        assert abs(rows[name].diff_percent) <= 15, (name, rows[name].diff_percent)


def test_docs_table_is_the_computed_one():
    doc = (ROOT / "docs/fit.md").read_text(encoding="utf-8")
    assert published.format_markdown() in doc, "regenerate: slothlab check --published --markdown"
