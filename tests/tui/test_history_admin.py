"""History keeps itself current and lets runs be named, noted and deleted; Compare puts runs
side by side (train and eval curves, final metrics, the settings that differ)."""

from __future__ import annotations

import json
from pathlib import Path

from recipes import events as ev
from tests.tui.conftest import write_run
from tests.tui.test_screens import showing, until, words
from tui.history import NOTES_FILE, read_notes
from tui.screens.compare import CompareScreen, differing_settings
from tui.screens.confirm import ConfirmScreen
from tui.screens.history import HistoryScreen
from tui.screens.prompt import PromptScreen
from tui.widgets.loss_plot import LossPlot
from tui.widgets.runs_table import RunsTable

SIZE = (120, 40)


def cell(table: RunsTable, row: int, column: str) -> str:
    return str(table.get_cell_at((row, list(table.columns).index(column))))


async def open_history(pilot) -> RunsTable:
    await pilot.press("3")
    await until(pilot, lambda: showing(pilot.app, HistoryScreen), what="History")
    table = pilot.app.screen.query_one(RunsTable)
    await until(pilot, lambda: table.row_count > 0, what="the runs")
    return table


async def test_a_run_can_be_named_and_noted_without_moving_its_folder(make_app,
                                                                      past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_history(pilot)
        await pilot.press("n")
        await until(pilot, lambda: showing(app, PromptScreen), what="the prompt")
        await pilot.press(*"lr 3e-3 baseline", "enter")
        await until(pilot, lambda: cell(table, 0, "run") == "lr 3e-3 baseline", what="the name")
        await pilot.press("a")
        await until(pilot, lambda: showing(app, PromptScreen), what="the prompt")
        await pilot.press(*"OOM at bs 8", "enter")
        await until(pilot, lambda: cell(table, 0, "note") == "OOM at bs 8", what="the note")
    run = past_runs["failed"]
    assert run.is_dir(), "the folder keeps its name"
    assert read_notes(run) == {"name": "lr 3e-3 baseline", "note": "OOM at bs 8"}
    assert json.loads((run / NOTES_FILE).read_text())["name"] == "lr 3e-3 baseline"


async def test_a_run_is_deleted_after_a_question(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_history(pilot)
        await pilot.press("d")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        await pilot.press("n")
        await until(pilot, lambda: showing(app, HistoryScreen), what="kept")
        assert past_runs["failed"].is_dir()
        await pilot.press("d")
        await until(pilot, lambda: showing(app, ConfirmScreen), what="the question")
        await pilot.press("y")
        await until(pilot, lambda: table.row_count == 2, what="the row to go")
    assert not past_runs["failed"].exists()
    assert past_runs["stopped"].is_dir() and past_runs["finished"].is_dir()


async def test_a_running_run_cannot_be_deleted(make_app, past_runs, monkeypatch) -> None:
    running = write_run(Path("runs"), "20261121-120000-demo", steps=300, until=50,
                        outcome="running")
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)  # its process is alive
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_history(pilot)
        assert cell(table, 0, "status") == "running"
        await pilot.press("d")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmScreen), "no question: it is refused"
    assert running.is_dir()


async def test_history_follows_a_running_run_by_itself(make_app, past_runs,
                                                       monkeypatch) -> None:
    running = write_run(Path("runs"), "20261121-120000-demo", steps=300, until=50,
                        outcome="running")
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)
    monkeypatch.setattr("tui.screens.history.REFRESH_SECONDS", 0.2)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        table = await open_history(pilot)
        assert cell(table, 0, "step") == "50/300"
        step = ev.Step(step=55, total_steps=300, epoch=2.1, loss=1.5, learning_rate=1e-3,
                       grad_norm=1.0, tokens_per_second=7000.0)
        with open(running / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(step.to_json() + "\n")
        await until(pilot, lambda: cell(table, 0, "step") == "55/300", what="the new step")
        write_run(Path("runs"), "20261121-130000-demo", steps=300, until=10, outcome="failed")
        await until(pilot, lambda: table.row_count == 5, what="a run started elsewhere")


async def test_compare_shows_eval_curves_final_metrics_and_differing_settings(
        make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await open_history(pilot)
        await pilot.press("down", "space", "down", "space", "c")
        await until(pilot, lambda: showing(app, CompareScreen)
                    and app.screen.query("#settings"), what="Compare")
        plot = app.screen.query_one(LossPlot)
        legend = plot.query_one(".legend")
        assert words(legend) == "━━ 20261121-103000-demo ━━ 20261121-101500-demo"
        await pilot.press("p")
        await until(pilot, lambda: "[reverse] eval loss" in str(plot.border_title),
                    what="the eval curves")
        finals = app.screen.query_one("#finals")
        columns = [str(c.label) for c in finals.columns.values()]
        assert columns[-2:] == ["rouge_l", "exact_match"], "the fine-tuned metrics, side by side"
        assert [str(v) for v in finals.get_row_at(1)[-2:]] == ["0.4120", "0.2000"]
        assert [str(v) for v in finals.get_row_at(0)[-2:]] == ["–", "–"], "stopped: none"
        settings = app.screen.query_one("#settings")
        rows = {str(settings.get_row_at(i)[0]): [str(v) for v in settings.get_row_at(i)[1:]]
                for i in range(settings.row_count)}
        assert rows == {"lora_r": ["8", "16"], "learning_rate": ["0.001", "0.003"]}


def test_differing_settings_ignores_what_is_the_same(past_runs) -> None:
    from tui.history import scan_runs

    runs = scan_runs(Path("runs"))
    assert set(differing_settings(runs)) == {"learning_rate", "lora_r"}
    same = [r for r in runs if r.path != past_runs["stopped"]]
    assert differing_settings(same) == {}
