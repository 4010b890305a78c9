"""Experiments end to end on a CPU: seed 001's table in tiny mode (the label fix wins), a stop
and resume that trains nothing twice and evaluates the base model once, Ctrl-C's exit 130."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.experiment import ExperimentOptions, run_experiment
from recipes.experiment_dir import EXPERIMENT_EVENTS, current_run
from recipes.experiment_spec import load_experiment
from recipes.rundir import EVENTS_FILE, check_run_dir, checkpoints
from tests.helpers import slothlab_env

pytestmark = pytest.mark.slow
SLOTHLAB = (sys.executable, "-m", "tui.cli")
ROOT = Path(__file__).resolve().parents[1]


def events_of(run_dir: Path) -> list[ev.Event]:
    return ev.read_events(run_dir / EVENTS_FILE)


def test_seed001_in_tiny_mode_shows_what_the_label_fix_is_worth(tmp_path: Path,
                                                                 tiny_cache: Path) -> None:
    """The README's tiny table, shortened: 60 steps per variant, shorter sequences (about
    35 s on 2 idle cores)."""
    runs = tmp_path / "runs"
    proc = subprocess.run(
        [*SLOTHLAB, "experiment", "seed001-medqa", "--tiny", "--set", "max_steps=60",
         "--set", "max_seq_length=128", "--json", "--runs-dir", str(runs)],
        capture_output=True, text=True, env=slothlab_env(tiny_cache), timeout=1500, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    stream = [ev.parse_event(line) for line in proc.stdout.splitlines()]
    assert stream[0].type == "experiment_started" and stream[-1].type == "experiment_ended"
    assert stream[-1].status == "finished"
    run_events = [e for e in stream if e.type in ev.EVENT_TYPES and not e.type.startswith(
        ("experiment_", "variant_"))]
    assert {e.variant for e in run_events} == {"exp001", "exp002", "exp003", "exp004"}, \
        "every run event on stdout says which variant it belongs to"

    folder = runs / "seed001-medqa-tiny"
    table = json.loads((folder / "experiment.json").read_text(encoding="utf-8"))
    rows = {r["variant"]: r for r in table["rows"]}
    assert all(r["status"] == "finished" and r["steps"] == 60 for r in rows.values())
    misaligned, aligned = rows["exp003"], rows["exp004"]  # same steps, same learning rate
    assert misaligned["effective"]["misalign_labels"] and not aligned["effective"]["misalign_labels"]
    # Validation labels are aligned for every variant: the misaligned model predicts the wrong
    # token and its loss stays clearly higher; its answers score lower.
    assert misaligned["val_loss"] > aligned["val_loss"] + 0.5, (misaligned, aligned)
    for metric in ("rouge1", "rouge2", "bleu", "chrf"):
        assert aligned["metrics"][metric]["finetuned"] > misaligned["metrics"][metric]["finetuned"]
    assert table["primary_metric"] == "rouge2" and table["best"] == "exp004"
    assert [r["base_eval"] for r in rows.values()] == ["computed"] + ["shared from exp001"] * 3
    for row in rows.values():  # each variant is an ordinary, complete run
        run_dir = check_run_dir(Path(row["run_dir"]))
        assert (run_dir / "adapter" / "adapter_config.json").is_file()
        assert (run_dir / "report.md").is_file()
    markdown = (folder / "experiment.md").read_text(encoding="utf-8")
    assert "| ★ exp004 |" in markdown and "misalign_labels=true" in markdown
    assert (folder / "losses.png").stat().st_size > 10_000


EXPERIMENT = """name: three-rates
recipe: demo
common: {max_steps: 6, save_steps: 100, logging_steps: 1, eval_steps: 0, eval_samples: 4,
         max_new_tokens: 4}
variants:
  a: {learning_rate: 1.0e-3}
  b: {learning_rate: 2.0e-3}
  c: {learning_rate: 3.0e-3}
"""


def test_stop_and_resume_finish_only_what_was_left(tmp_path: Path, tiny_cache: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    import recipes.evaluate

    base_evaluations: list[str] = []
    real_run_stage = recipes.evaluate.run_stage

    def counting(stage, *args, **kwargs):
        if stage == "base":
            base_evaluations.append(stage)
        return real_run_stage(stage, *args, **kwargs)

    monkeypatch.setattr(recipes.evaluate, "run_stage", counting)
    path = tmp_path / "three-rates.yaml"
    path.write_text(EXPERIMENT, encoding="utf-8")
    experiment = load_experiment(path)
    options = dict(runs_root=tmp_path / "runs", cache_dir=tiny_cache)

    first = run_experiment(experiment, ExperimentOptions(**options, stop_at=("b", 3)))
    assert first.status == "stopped"
    assert [r["status"] for r in first.table["rows"]] == ["finished", "stopped", "pending"]
    folder = first.experiment_dir
    stopped = current_run(folder, "b")
    assert [c.name for c in checkpoints(stopped)] == ["checkpoint-3"]

    second = run_experiment(experiment, ExperimentOptions(**options, resume=True))
    assert second.status == "finished" and second.experiment_dir == folder
    assert [r["status"] for r in second.table["rows"]] == ["finished"] * 3
    for name, segments in (("a", 1), ("b", 2), ("c", 1)):
        runs = list((folder / "variants" / name).iterdir())
        assert len(runs) == 1, f"{name}: one run directory"
        events = events_of(runs[0])
        starts = [e for e in events if isinstance(e, ev.RunStarted)]
        assert len(starts) == segments, f"{name}: trained in {segments} segment(s)"
        steps = [e.step for e in events if isinstance(e, ev.Step)]
        assert steps == list(range(1, 7)), f"{name}: every step once, none trained twice"
    assert [e.resumed_from_step for e in events_of(stopped) if isinstance(e, ev.RunStarted)] \
        == [0, 3]
    ended = [e for e in ev.read_events(folder / EXPERIMENT_EVENTS)
             if isinstance(e, ev.VariantEnded)]
    assert [(e.variant, e.skipped) for e in ended] == [
        ("a", False), ("b", False), ("a", True), ("b", False), ("c", False)]
    assert len(base_evaluations) == 1, "the base model is evaluated once for the experiment"
    assert [r["base_eval"] for r in second.table["rows"]] == ["computed", "shared from a",
                                                              "shared from a"]


def test_ctrl_c_stops_the_variant_with_a_checkpoint_and_the_experiment(tmp_path: Path,
                                                                       tiny_cache: Path) -> None:
    path = tmp_path / "stop-me.yaml"
    path.write_text("recipe: demo\ncommon: {eval_steps: 0, eval_samples: 2, max_new_tokens: 4}\n"
                    "variants:\n  short: {max_steps: 2}\n"
                    "  long: {max_steps: 2000, save_steps: 1000}\n", encoding="utf-8")
    command = [*SLOTHLAB, "experiment", str(path), "--json", "--runs-dir", str(tmp_path / "runs")]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env=slothlab_env(tiny_cache))
    try:
        for line in proc.stdout:
            event = ev.parse_event(line)
            if event.type == "step" and event.variant == "long":
                proc.send_signal(signal.SIGINT)
                break
        rest = [ev.parse_event(line) for line in proc.stdout.read().splitlines()]
        code = proc.wait(timeout=300)
    finally:
        proc.kill()
    assert code == 130, proc.stderr.read()[-2000:]
    stopped = next(e for e in rest if e.type == "stopped")
    assert stopped.variant == "long" and Path(stopped.checkpoint).is_dir()
    assert stopped.resume_command == f"slothlab experiment {path}", "the experiment continues it"
    last = rest[-1]
    assert last.type == "experiment_ended" and last.status == "stopped"
    assert last.resume_command == f"slothlab experiment {path}"
    table = json.loads((tmp_path / "runs" / "stop-me" / "experiment.json").read_text())
    assert [r["status"] for r in table["rows"]] == ["finished", "stopped"]
    # The folder holds this plan: the same file with other settings is refused, not mixed in.
    again = subprocess.run([*command, "--set", "max_steps=5"], capture_output=True, text=True,
                           env=slothlab_env(tiny_cache), timeout=300)
    assert again.returncode == 2 and "holds a different experiment" in again.stderr
