"""The TUI's model, without a screen: series, run state, results, history, fit and device."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from rich.console import Console

from recipes import events as ev
from recipes.errors import RecipeError
from recipes.schema import Recipe, load_recipe
from tests.tui.conftest import FAKE_SLOTHLAB, write_full_recipe, write_run
from tui import fit
from tui.catalog import as_run, load_catalog
from tui.device import probe_device
from tui.history import scan_runs
from tui.report import load_results
from tui.runstate import LOG_CAP, RunState
from tui.series import Series
from tui.widgets.fit_view import render_fit


def test_import_does_not_load_torch() -> None:
    code = ("import sys, tui.app; heavy = [m for m in ('torch', 'transformers', 'unsloth', 'trl', "
            "'peft', 'datasets') if m in sys.modules]; print(','.join(heavy))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"import tui.app loaded {out.stdout.strip()}"


def test_series_stays_bounded_and_covers_the_whole_run() -> None:
    series = Series(cap=64)
    for step in range(1, 100_001):
        series.add(step, 1.0 / step)
    xs, ys = series.points()
    assert len(xs) <= 64
    assert xs[-1] == 100_000 and xs[0] < 5_000, "downsampling must keep the start and the tip"
    assert xs == sorted(xs)


def test_series_forgets_steps_repeated_after_a_resume() -> None:
    series = Series()
    for step in range(1, 11):
        series.add(step, float(step))
    series.add(6, 60.0)  # resumed from the checkpoint at step 5
    xs, ys = series.points()
    assert xs == [1, 2, 3, 4, 5, 6] and ys[-1] == 60.0


@pytest.mark.skipif("stage" not in {f.name for f in dataclasses.fields(ev.Step)},
                    reason="this events.py has no stages yet")
def test_stages_keep_their_own_loss_curves() -> None:
    state = RunState()
    for stage, steps in (("pretrain", 10), ("finetune", 5)):
        for step in range(1, steps + 1):
            state.apply(ev.Step(step=step, total_steps=steps, epoch=0, loss=1.0,
                                learning_rate=1e-3, grad_norm=None, tokens_per_second=1.0,
                                stage=stage))
    assert state.stages == ["pretrain", "finetune"] and state.stage == "finetune"
    assert len(state.train_loss) == 5 and len(state.series["pretrain"][0]) == 10
    assert state.current_step == 5


def test_an_oom_backoff_is_logged_and_the_repeated_steps_replace_the_old_ones() -> None:
    state = RunState()
    for step in range(1, 6):
        state.apply(ev.Step(step=step, total_steps=8, epoch=0, loss=float(step),
                            learning_rate=1e-3, grad_norm=None, tokens_per_second=1.0))
    state.apply(ev.Oom(step=5, phase="train", resume_step=3, message="batch 8→4, accumulation "
                       "1→2 (effective batch 8); continuing from checkpoint 3",
                       changes={"batch_size": [8, 4], "gradient_accumulation_steps": [1, 2]}))
    assert state.train_loss.points()[0] == [1, 2, 3]
    assert "out of memory at step 5 (training): batch 8→4" in state.log[-1].text


def test_run_state_log_is_capped() -> None:
    state = RunState()
    for step in range(LOG_CAP * 3):
        state.apply(ev.Step(step=step + 1, total_steps=10**6, epoch=0, loss=1.0,
                            learning_rate=1e-3, grad_norm=None, tokens_per_second=1.0))
    assert len(state.log) == LOG_CAP and state.log_total == LOG_CAP * 3


def test_run_state_eta_from_step_times() -> None:
    state = RunState()
    state.live = True
    for step, t in ((10, 100.0), (20, 110.0)):
        state.apply(ev.Step(step=step, total_steps=100, epoch=0, loss=1.0, learning_rate=1e-3,
                            grad_norm=1.0, tokens_per_second=1.0, time=t))
    assert state.steps_per_second() == pytest.approx(1.0)
    assert state.eta(now=110.0) == pytest.approx(80.0)
    assert state.eta(now=130.0) == pytest.approx(60.0), "counts down between step events"
    assert not state.steps_done
    state.apply(ev.Step(step=100, total_steps=100, epoch=0, loss=1.0, learning_rate=1e-3,
                        grad_norm=1.0, tokens_per_second=1.0, time=190.0))
    assert state.steps_done, "after the last step: the final evaluation, not an ETA"


def two_segments() -> list[ev.Event]:
    """A run stopped at step 20 (t=100..130) and resumed 60 s later (t=190..230)."""
    def started(t: float, resumed: int) -> ev.RunStarted:
        return ev.RunStarted(run_dir="runs/x", recipe="demo", backend="reference",
                             backend_reason="cpu", device="CPU", tiny=True,
                             resumed_from_step=resumed, pid=0, time=t)

    def step(n: int, t: float, peak: float) -> ev.Step:
        return ev.Step(step=n, total_steps=40, epoch=0, loss=1.0, learning_rate=1e-3,
                       grad_norm=1.0, tokens_per_second=1.0, time=t,
                       memory=ev.Memory("rss", peak - 10, peak, 24000.0))

    preflight = dict(splits={"train": 1}, tokens_min=1, tokens_median=1, tokens_max=1,
                     trained_token_share=1.0, truncated=0, no_trained_tokens=0,
                     max_seq_length=128, total_steps=40)
    return [started(100, 0), ev.Preflight(**preflight, time=102),
            ev.Metrics(stage="base", values={"rouge_l": 0.1}, time=105),
            step(10, 115, 1300.0), step(20, 125, 1400.0),
            ev.Stopped(step=20, checkpoint="runs/x/checkpoints/checkpoint-20",
                       resume_command="slothlab --resume runs/x", time=130),
            started(190, 20), ev.Preflight(**preflight, time=192),
            step(30, 210, 900.0), step(40, 220, 1000.0),
            ev.Finished(step=40, final_loss=1.0, adapter_dir="runs/x/adapter", seconds=40.0,
                        time=230)]


def test_a_resumed_run_counts_every_segment() -> None:
    state = RunState()
    for event in two_segments():
        state.apply(event)
    assert state.elapsed() == pytest.approx(30 + 40), "active time: not the 60 s pause"
    assert state.segments == 2
    stamps = [line.text.split()[0] for line in state.log if line.text.startswith("+")]
    assert stamps[-1] == "+1:10", "the log's clock is the header's clock"
    assert "+0:30 resumed demo from step 20" in [line.text for line in state.log]
    assert state.memory.peak_mb == 1400.0, "the peak of the whole run, not of the segment"
    assert state.memory.now_mb == 990.0
    results = load_results(None, state)
    assert dict(results.summary)["run time"] == "1:10 (2 segments)"


def test_resuming_resets_what_the_segment_has_done() -> None:
    state = RunState()
    for event in two_segments()[:6]:  # up to the stop: preflight and base metrics seen
        state.apply(event)
    state.begin_live()  # r: the resume's process starts
    assert state.status == "starting" and state.phase == "starting the process…"
    state.apply(two_segments()[6])
    assert state.phase == "loading the data and the model…"
    state.apply(two_segments()[7])
    assert state.phase.startswith("preflight done"), "the base evaluation was the last segment's"


def test_reopened_runs_have_the_right_status(past_runs) -> None:
    statuses = {k: RunState.from_run_dir(p).status for k, p in past_runs.items()}
    assert statuses == {"finished": "finished", "stopped": "stopped", "failed": "failed"}
    assert RunState.from_run_dir(past_runs["stopped"]).resumable
    assert not RunState.from_run_dir(past_runs["finished"]).resumable
    failed = RunState.from_run_dir(past_runs["failed"])
    assert failed.error_text[0].startswith("OutOfMemoryError")
    assert "batch_size" in failed.error_text[1]


def test_a_run_whose_process_vanished_is_interrupted(tmp_path: Path) -> None:
    run = write_run(Path("runs"), "x", steps=100, until=20, outcome="none")
    assert RunState.from_run_dir(run).status == "interrupted"


def test_refused_input_shows_the_cli_error() -> None:
    state = RunState()
    state.live = True
    state.add_stderr("error: demo.yaml:12: field 'learning_rate' = 'fast': expected a number")
    state.add_stderr("  → Peak learning rate.")
    state.process_exited(2)
    assert state.status == "failed"
    error, _ = state.error_text
    assert error.startswith("demo.yaml:12") and "Peak learning rate" in error


def test_history_lists_runs_newest_first_and_skips_other_folders(past_runs) -> None:
    Path("runs/not-a-run").mkdir()
    names = [r.name for r in scan_runs(Path("runs"))]
    assert names == ["20261121-104500-demo", "20261121-103000-demo", "20261121-101500-demo"]


def test_results_from_report_json(past_runs) -> None:
    run = past_runs["finished"]
    results = load_results(run, RunState.from_run_dir(run))
    assert results.report_found
    summary = dict(results.summary)
    assert summary["val loss @300"].startswith("1.1128"), "the trainer's eval: validation split"
    assert summary["run time"] == "0:21"
    assert (results.eval_split, results.eval_size) == ("test", 25), "report.json's eval_set"
    assert [m.name for m in results.metrics] == ["rouge_l", "exact_match"]
    assert results.answers[0].base.startswith("The capital") and results.answers[0].finetuned
    assert dict((label, exists) for label, _, exists in results.artifacts)["report"] is True


def test_results_read_the_eval_set_not_a_default(past_runs) -> None:
    run = past_runs["finished"]
    report = json.loads((run / "report.json").read_text(encoding="utf-8"))
    report["eval_set"] = {"split": "validation", "size": 12}
    (run / "report.json").write_text(json.dumps(report), encoding="utf-8")
    results = load_results(run, RunState.from_run_dir(run))
    assert (results.eval_split, results.eval_size) == ("validation", 12)
    del report["eval_set"]  # an older report: the test split, size unknown
    (run / "report.json").write_text(json.dumps(report), encoding="utf-8")
    results = load_results(run, RunState.from_run_dir(run))
    assert (results.eval_split, results.eval_size) == ("test", None)


def test_results_without_report_fall_back_to_events(past_runs) -> None:
    run = past_runs["finished"]
    (run / "report.json").unlink()
    results = load_results(run, RunState.from_run_dir(run))
    assert not results.report_found and not results.report_error
    rouge = next(m for m in results.metrics if m.name == "rouge_l")
    assert rouge.base == 0.121 and rouge.finetuned == 0.412
    assert results.answers and results.answers[0].base is None  # the eval samples
    assert any(label == "adapter" for label, _, _ in results.artifacts)


def test_a_broken_report_is_reported_not_raised(past_runs) -> None:
    run = past_runs["finished"]
    (run / "report.json").write_text("{not json", encoding="utf-8")
    results = load_results(run, RunState.from_run_dir(run))
    assert "unreadable" in results.report_error and results.metrics  # events still shown


def test_fit_without_the_estimator_is_unknown(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "kernels_check.fit", None)  # import fails
    from recipes.registry import bundled

    result = fit.estimate(load_recipe(bundled()["demo"]), 8.0)
    assert result.verdict == "unknown" and result.badge[0] == "?"
    assert "not installed" in result.reason


def test_fit_reads_a_report_object() -> None:
    report = SimpleNamespace(total_gib=5.2, components={"weights": 2.0, "activations": 3.2},
                             vram_gib=6.0, verdict="tight", max_batch_size=2, max_seq_length=1024,
                             advice=["lower batch_size"], model="x")
    result = fit.from_report(report)
    assert (result.verdict, result.need, result.max_batch_size) == ("tight", "5.2 GiB", 2)
    assert result.advice == "lower batch_size"


def fit_text(result: fit.Fit, vram: float | None, source: str) -> str:
    console = Console(width=100, record=True, file=io.StringIO())
    console.print(render_fit(result, vram, source))
    return console.export_text()


def test_an_unknown_architecture_has_no_memory_need_not_zero() -> None:
    # kernels_check.fit.estimate for a model it cannot size: total 0.0, verdict unknown, a reason
    report = SimpleNamespace(total_gib=0.0, components={}, vram_gib=None, verdict="unknown",
                             max_batch_size=0, max_seq_length=0, advice="",
                             reason="'someone/unknown-model-xyz' is not in the model table")
    result = fit.from_report(report)
    assert result.total_gib is None and result.need == "?" and result.verdict == "unknown"
    assert "not in the model table" in result.reason
    for source in ("none", "pending", "unknown", "chosen", "detected"):
        assert result.badge_for(source) == fit.BADGE["unknown"], source
        text = fit_text(result, 8.0 if source in ("chosen", "detected") else None, source)
        assert "memory need unknown" in text and "not in the model table" in text, source
        assert "0.0" not in text and "GiB on a GPU" not in text, text
    chosen = fit.from_report(SimpleNamespace(**{**vars(report), "vram_gib": 8.0}))
    assert chosen.total_gib is None and chosen.verdict == "unknown"


def test_an_unknown_architecture_with_the_real_estimator() -> None:
    pytest.importorskip("kernels_check.fit")
    for vram in (None, 8.0):
        result = fit.estimate(Recipe(model="someone/unknown-model-xyz"), vram)
        assert result.total_gib is None and result.badge[0] == "?", vram
        assert result.reason and "0.0 GiB" not in fit_text(result, vram, "none")


def test_invalid_tiny_overrides_are_an_error_not_dropped() -> None:
    write_full_recipe(tiny_overrides={"learning_rate": "nan", "max_steps": "7"})
    full = next(e for e in load_catalog(Path("my_recipes")) if e.name == "full")
    assert full.recipe is not None and not full.error, "it loads as a full recipe"
    assert full.error_for(tiny=False) == ""
    problem = full.error_for(tiny=True)
    assert "full.yaml" in problem and "tiny_overrides.learning_rate" in problem
    assert "expected a finite number" in problem
    with pytest.raises(RecipeError, match="finite"):  # not the full hyperparameters, silently
        as_run(full.recipe, tiny=True)
    demo = next(e for e in load_catalog(None) if e.name == "demo")
    assert demo.error_for(tiny=True) == ""


def test_device_probe_reads_the_json(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_DEVICE", "gpu")
    info = asyncio.run(probe_device(FAKE_SLOTHLAB))
    assert info.known and info.cuda and info.vram_total_gib == 12.0
    assert "RTX 3060" in info.summary


def test_device_probe_failure_is_explained(monkeypatch) -> None:
    monkeypatch.setenv("FAKE_DEVICE", "broken")
    info = asyncio.run(probe_device(FAKE_SLOTHLAB))
    assert not info.known
    assert info.summary == "device: unknown (ModuleNotFoundError: No module named " \
                           "'kernels_check.cli')"


def test_fit_with_the_real_estimator_when_present() -> None:
    pytest.importorskip("kernels_check.fit")
    from recipes.registry import bundled

    result = fit.estimate(load_recipe(bundled()["demo"]), 8.0)
    assert result.verdict in fit.BADGE and result.badge[0] != ""
    if result.verdict != "unknown":
        assert result.total_gib is not None and result.components


def test_counts_and_paths_read_well() -> None:
    from tui.format import plural
    from tui.widgets.artifacts_view import wrap_path

    assert [plural(n, "epoch") for n in (1, 2, 0.5)] == ["1 epoch", "2 epochs", "0.5 epochs"]
    path = "runs/20261121-101500-demo/checkpoints/checkpoint-300"
    lines = wrap_path(path, 28).splitlines()
    assert lines == ["runs/20261121-101500-demo/", "checkpoints/checkpoint-300"]
    assert wrap_path(path, 80) == path
