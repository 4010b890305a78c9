"""Plots that read at a glance (integer steps, round y labels, the legend outside, loss / lr /
grad tabs, log scale) and Results that explain themselves (n/a near a zero base, "lower is
better", a line per metric, every row, stages labelled); the memory gauge's colour."""

from __future__ import annotations

import json
from pathlib import Path

from recipes.events import Memory
from tests.tui.conftest import write_staged_run
from tests.tui.test_screens import showing, shows, text_of, until, words
from tui.report import load_results, relative_change
from tui.runstate import RunState
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.widgets.loss_plot import LossPlot, nice_ticks
from tui.widgets.memory_gauge import render_gauge
from tui.widgets.metrics_table import MetricsTable

SIZE = (120, 40)
FINISHED = Path("runs/20261121-101500-demo")


def figure_text(plot: LossPlot) -> str:
    return text_of(plot.query_one("_Figure"))


# -- ticks -----------------------------------------------------------------------------------
def test_step_ticks_are_integers_and_evenly_spaced() -> None:
    ticks = nice_ticks(5, 15, 5, integer=True)
    assert all(t == int(t) for t in ticks)
    assert len({b - a for a, b in zip(ticks, ticks[1:], strict=False)}) == 1
    assert nice_ticks(1, 3, 10, integer=True) == [1, 2, 3], "never a step below 1"


def test_value_ticks_are_round_and_evenly_spaced() -> None:
    ticks = nice_ticks(0.8628, 6.27, 4)
    assert ticks == [2, 4, 6]
    ticks = nice_ticks(0.0012, 0.0029, 4)
    gaps = {round(b - a, 9) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(gaps) == 1 and ticks[0] >= 0.0012 and ticks[-1] <= 0.0029


# -- the Run screen's plot -------------------------------------------------------------------
async def test_the_plot_has_its_legend_outside_integer_steps_and_tabs(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(FINISHED)
        await until(pilot, lambda: showing(app, RunScreen)
                    and app.screen.query(LossPlot), what="the run")
        plot = app.screen.query_one(LossPlot)
        await until(pilot, lambda: "100" in figure_text(plot), what="the plot")
        assert words(plot.query_one(".legend")) == "━━ train ━━ eval"
        figure = figure_text(plot)
        assert "train" not in figure and "eval" not in figure, "no legend over the curves"
        x_axis = next(line for line in figure.splitlines() if "300" in line)
        assert x_axis.split() == ["100", "200", "300"], "integer step ticks"
        y_labels = [line.split("┤")[0].strip() for line in figure.splitlines() if "┤" in line]
        values = [float(v) for v in y_labels]
        assert all(v == int(v) for v in values), "round loss labels"
        assert len({a - b for a, b in zip(values, values[1:], strict=False)}) == 1, "evenly spaced"
        await pilot.press("p")
        await until(pilot, lambda: "learning rate" in words(plot.query_one(".legend")),
                    what="the learning-rate tab")
        assert "[reverse] lr" in str(plot.border_title)
        await pilot.press("p")
        await until(pilot, lambda: "grad norm" in words(plot.query_one(".legend")),
                    what="the grad-norm tab")
        await pilot.press("y")
        assert plot.log_scale
        await until(pilot, lambda: figure_text(plot) != figure, what="the log scale")


async def test_a_staged_run_plots_and_samples_each_stage_labelled(make_app) -> None:
    run_dir = write_staged_run(Path("runs"))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run_dir)
        await until(pilot, lambda: showing(app, RunScreen)
                    and app.screen.query(LossPlot), what="the run")
        plot = app.screen.query_one(LossPlot)
        await until(pilot, lambda: "finetune train" in words(plot.query_one(".legend")),
                    what="the last stage's curves")
        assert "stage finetune" in str(plot.border_title)
        await pilot.press("v")
        await until(pilot, lambda: "pretrain train" in words(plot.query_one(".legend")),
                    what="the other stage")
        await pilot.press("e")
        view = app.screen.query_one("SamplesView Static")
        await until(pilot, lambda: "pretrain" in words(view), what="the samples tab")
        samples = words(view)
        assert "── pretrain ── at step 60" in samples
        assert "── finetune ── at step 30" in samples


# -- Results ---------------------------------------------------------------------------------
def test_no_relative_change_from_a_base_near_zero() -> None:
    assert relative_change(0.0, 0.2) is None
    assert relative_change(0.004, 0.3) is None
    assert relative_change(0.2, 0.1) == 0.5


async def test_results_explain_their_metrics(make_app, past_runs) -> None:
    report = json.loads((FINISHED / "report.json").read_text())
    report["metrics"].update({
        "eval_loss": {"base": 2.5, "finetuned": 1.1},
        "perplexity": {"base": 12.2, "finetuned": 3.0},
        **{f"f1/task{i}": {"base": 0.001 * i, "finetuned": 0.5} for i in range(8)}})
    (FINISHED / "report.json").write_text(json.dumps(report))
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.show_results(RunState.from_run_dir(FINISHED))
        await until(pilot, lambda: showing(app, ResultsScreen)
                    and app.screen.query(MetricsTable), what="results")
        table = app.screen.query_one(MetricsTable)
        await until(pilot, lambda: table.row_count == 12, what="every metric")
        await until(pilot, lambda: table.size.height >= table.row_count + 1,
                    what=lambda: f"every row shown, none scrolled away: height {table.size.height}")
        rows = {str(table.get_row_at(i)[0]): [str(c) for c in table.get_row_at(i)[1:]]
                for i in range(table.row_count)}
        assert rows["exact_match"][-1] == "n/a", "no relative change from a base of 0"
        assert rows["rouge_l"][-1] == "+240%"
        assert "eval_loss ↓ lower is better" in rows and "perplexity ↓ lower is better" in rows
        help_line = app.screen.query_one("#metric-help")
        await until(pilot, lambda: words(help_line).startswith("ROUGE-L: longest common word"),
                    what=lambda: f"the first metric's explanation, shown: {words(help_line)!r}")
        table.focus()
        await pilot.press("down")
        await until(pilot, lambda: words(help_line).startswith("Exact match:"),
                    what="the next metric's explanation")


async def test_staged_results_label_each_stage(make_app) -> None:
    run_dir = write_staged_run(Path("runs"))
    results = load_results(run_dir, RunState.from_run_dir(run_dir))
    assert [stage for stage, _ in results.stage_metrics] == ["tokenizer", "pretrain"]
    assert {a.stage for a in results.answers} == {"pretrain", "finetune"}
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.show_results(RunState.from_run_dir(run_dir))
        await until(pilot, lambda: showing(app, ResultsScreen)
                    and app.screen.query("#stage-metrics"), what="results")
        box = app.screen.query_one("#metrics-box")
        await until(pilot, lambda: "finetune · before / after" in str(box.border_title),
                    what=lambda: f"the stage in the title, shown: {box.border_title}")
        await shows(pilot, app.screen.query_one("#stage-metrics"), "tokenizer vocab_size 512",
                    "pretrain eval_loss 2.02")
        await shows(pilot, app.screen.query_one("AnswersView Static"), "── pretrain ──",
                    "── finetune ──")
        answers = words(app.screen.query_one("AnswersView Static"))
        assert answers.index("── pretrain ──") < answers.index("── finetune ──")


# -- the memory gauge ------------------------------------------------------------------------
def bar_styles(memory: Memory) -> set[str]:
    text = render_gauge(memory, 20)
    return {str(span.style) for span in text.spans if "█" in text.plain[span.start:span.end]}


def test_the_memory_gauge_colours_by_share_of_the_total() -> None:
    assert bar_styles(Memory("vram", 2000, 2500, 8000)) == {"green"}
    assert bar_styles(Memory("vram", 6500, 6600, 8000)) == {"yellow"}
    assert bar_styles(Memory("vram", 7800, 7900, 8000)) >= {"red"}
    unknown = render_gauge(Memory("rss", 900, 950, 0), 20)
    assert "total unknown" in unknown.plain
    assert "red" not in {str(s.style) for s in unknown.spans}
