"""Experiments in the TUI: History groups an experiment's runs in one row, the Experiment screen
shows the comparison and the overlaid curves, follows a running experiment, starts, stops and
resumes one (the real experiment code with scripted runs: tests/tui/fake_experiment.py)."""

from __future__ import annotations

import json
import os
from pathlib import Path

from recipes import events as ev
from recipes.experiment import ExperimentOptions, open_experiment
from recipes.experiment_dir import EXPERIMENT_EVENTS
from recipes.experiment_report import write_experiment_report
from recipes.experiment_spec import load_experiment
from tests.tui.conftest import write_run
from tests.tui.test_screens import until
from tui.screens.experiment import ExperimentScreen
from tui.screens.run import RunScreen
from tui.widgets.experiment_list import ExperimentList
from tui.widgets.experiment_table import ExperimentTable
from tui.widgets.loss_plot import LossPlot
from tui.widgets.runs_table import RunsTable

SIZE = (140, 44)
EXPERIMENT = """name: lr-sweep
recipe: demo
primary_metric: rougeL
variants:
  slow: {learning_rate: 1.0e-3, max_steps: 40}
  fast: {learning_rate: 3.0e-3, max_steps: 40}
  broken: {learning_rate: 3.0e-3, max_steps: 40, misalign_labels: true}
"""


def shown(app) -> bool:
    """The Experiment screen is on top and composed."""
    return isinstance(app.screen, ExperimentScreen) and bool(app.screen.query(ExperimentTable))


def experiment_file() -> Path:
    path = Path("lr-sweep.yaml")
    path.write_text(EXPERIMENT, encoding="utf-8")
    return path


def write_experiment(outcomes: dict[str, str], *, running: bool = False) -> Path:
    """An experiment folder as the runner leaves it: plan, one run per variant (events at fixed
    times, as tests/tui/conftest.write_run writes them), experiment events and the table."""
    experiment = load_experiment(experiment_file())
    folder, _ = open_experiment(experiment, ExperimentOptions(runs_root=Path("runs")))
    for i, (name, outcome) in enumerate(outcomes.items()):
        run = write_run(folder / "variants" / name, f"20261121-10{i}000-demo", steps=300,
                        until=300 if outcome == "finished" else 150, outcome=outcome,
                        speed=1.0 + i)
        if outcome == "finished":  # as recipes/report.py writes it; the faster one scores more
            tuned = 0.3 + 0.15 * i
            (run / "report.json").write_text(json.dumps({"metrics": {"rougeL": {
                "base": 0.1, "finetuned": tuned, "change": tuned - 0.1,
                "relative": (tuned - 0.1) / 0.1, "lower_is_better": False}}}), encoding="utf-8")
    started = ev.ExperimentStarted(experiment="lr-sweep", experiment_dir=str(folder), tiny=False,
                                   primary_metric="rougeL", variants=[], pid=os.getpid())
    lines = [started.to_json()]
    if not running:
        lines.append(ev.ExperimentEnded(status="stopped", experiment_dir=str(folder),
                                        report=str(folder / "experiment.md")).to_json())
    (folder / EXPERIMENT_EVENTS).write_text("\n".join(lines) + "\n", encoding="utf-8")
    write_experiment_report(folder, experiment)
    return folder


async def test_history_shows_an_experiment_as_one_row_and_opens_it(make_app, past_runs) -> None:
    folder = write_experiment({"slow": "finished", "fast": "finished", "broken": "stopped"})
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        experiments = app.screen.query_one(ExperimentList)
        await until(pilot, lambda: experiments.row_count == 1)
        assert app.screen.query_one(RunsTable).row_count == 3, "variant runs are not listed"
        row = [str(cell) for cell in experiments.get_row_at(0)]
        assert row[0] == folder.name and row[2] == "stopped" and row[3] == "2/3 done"
        experiments.focus()
        await pilot.press("enter")
        await until(pilot, lambda: shown(app))
        table = app.screen.query_one(ExperimentTable)
        await until(pilot, lambda: table.row_count == 3)
        assert table.names == ["slow", "fast", "broken"]
        cells = [str(c) for c in table.get_row_at(1)]
        assert cells[0] == "★ fast" and not str(table.get_row_at(0)[0]).startswith("★")
        assert cells[2] == "finished" and cells[6] == "0.4500" and cells[7] == "+0.3500 +350.0%"
        assert str(table.get_row_at(2)[2]) == "stopped"
        plot = app.screen.query_one(LossPlot)
        assert [c.label for c in plot.curves] == ["slow", "fast", "broken"]
        await pilot.press("e")
        assert all(c.marker == "dot" for c in plot.curves) and "eval" in plot.border_title
        await pilot.press("down", "enter")  # the variant's own run
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        assert app.screen.state.run_dir.parent.name == "fast"
        await pilot.press("escape")
        await until(pilot, lambda: shown(app))
        assert "r" in app.screen.active_bindings, "a stopped experiment offers Resume"


async def test_a_running_experiment_is_followed_live(make_app, monkeypatch) -> None:
    folder = write_experiment({"slow": "finished", "fast": "none"}, running=True)
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.push_screen(ExperimentScreen(folder))
        await until(pilot, lambda: shown(app))
        table = app.screen.query_one(ExperimentTable)
        await until(pilot, lambda: table.row_count == 3)
        assert str(table.get_row_at(1)[2]) == "running"
        assert str(table.get_row_at(1)[3]) == "150/300"
        assert "s" in app.screen.active_bindings, "a running experiment can be stopped"
        [run] = list((folder / "variants" / "fast").iterdir())
        with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(ev.Step(step=155, total_steps=300, epoch=2.0, loss=1.5, learning_rate=1e-3,
                             grad_norm=1.0, tokens_per_second=7000.0).to_json() + "\n")
        await until(pilot, lambda: str(table.get_row_at(1)[3]) == "155/300", what="tail")
        assert str(table.get_row_at(1)[4]) == "1.5000"
        assert str(table.get_row_at(2)[2]) == "pending"


async def test_start_stop_and_resume_an_experiment(make_app, monkeypatch) -> None:
    monkeypatch.setenv("FAKE_RATE", "10")  # 4 s a variant: the stop lands in "fast"
    path = experiment_file()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        process = app.start_experiment(str(path))
        await until(pilot, lambda: shown(app))
        screen = app.screen
        table = screen.query_one(ExperimentTable)
        await until(pilot, lambda: table.row_count == 3 and
                    str(table.get_row_at(1)[2]) == "running", timeout=90,
                    what=lambda: f"the second variant: {[list(map(str, table.get_row_at(i))) for i in range(table.row_count)]} {list(process.stderr)[-5:]}")
        assert str(table.get_row_at(0)[2]) == "finished"
        await pilot.press("s")
        await until(pilot, lambda: app.screen.__class__.__name__ == "ConfirmScreen")
        await pilot.press("y")
        await until(pilot, lambda: process.exit_code is not None, what="the stop")
        assert process.exit_code == 130
        await until(pilot, lambda: str(table.get_row_at(1)[2]) == "stopped")
        assert str(table.get_row_at(2)[2]) == "pending"
        # The screen learns the experiment's own end on its next poll (1 s, later on a busy
        # machine): until then r is not offered and a press would be dropped.
        await until(pilot, lambda: "r" in screen.active_bindings, what="Resume offered")
        await pilot.press("r")
        await until(pilot, lambda: screen.process is not process and screen.process is not None)
        await until(pilot, lambda: screen.process.exit_code is not None, timeout=90,
                    what="the resumed experiment")
        assert screen.process.exit_code == 0, list(screen.process.stderr)
        await until(pilot, lambda: [str(table.get_row_at(i)[2]) for i in range(3)]
                    == ["finished"] * 3)
        fast = screen.view.followers["fast"].state
        assert fast.segments == 2 and fast.started.resumed_from_step > 0, "resumed, not redone"
        assert screen.view.followers["slow"].state.segments == 1, "skipped, not retrained"


async def test_refused_input_shows_the_cli_error(make_app) -> None:
    bad = Path("bad.yaml")
    bad.write_text("recipe: demo\nvariants:\n  a: {lora_r: 0}\n  b: {}\n", encoding="utf-8")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        process = app.start_experiment(str(bad))
        await until(pilot, lambda: process.exit_code is not None)
        assert process.exit_code == 2
        summary = app.screen.query_one("#summary")
        await until(pilot, lambda: "did not start" in str(summary.render()))
        assert "lora_r" in str(summary.render()) and "variant 'a'" in str(summary.render())


async def test_the_palette_offers_the_bundled_experiments(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE):
        titles = {c.title for c in app.get_system_commands(app.screen)}
        assert {"Experiment seed001-medqa", "Experiment seed000-inkuba-balance",
                "Experiment seed003-finetome-sweep"} <= titles
