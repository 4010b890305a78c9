"""Model and dataset text never reaches a terminal or report.md with its control characters raw.

Every C0 and C1 control character, DEL, an ANSI colour sequence and an OSC window-title
sequence go through each place that shows such text: ``safe_text`` itself, the TUI screens (Run
log, samples, error panel, Results answers, History), the headless Rich renderer, ``--list``,
error messages, and the report tables of recipes/report.py (single-stage and staged runs).
"""

from __future__ import annotations

import io
import json
import sys
import unicodedata
from pathlib import Path

import pytest
from rich.console import Console

from recipes import events as ev
from recipes.errors import DataError
from recipes.safe_text import safe_text
from tests.tui.test_screens import until
from tui.headless import RichRenderer
from tui.screens.history import HistoryScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen

CONTROLS = "".join(chr(c) for c in [*range(0x00, 0x20), 0x7F, *range(0x80, 0xA0)])
ANSI = "\x1b[31mRED\x1b[0m"
OSC = "\x1b]0;pwned\x07"
EVIL = f"start {CONTROLS} {ANSI} {OSC} end"


def raw_controls(text: str, allowed: str = "\n") -> list[str]:
    """The control characters (Unicode category Cc) in ``text``, bar ``allowed``."""
    return sorted({f"U+{ord(ch):04X}" for ch in text
                   if unicodedata.category(ch) == "Cc" and ch not in allowed})


def assert_escaped(text: str, allowed: str = "\n\t") -> None:
    """No raw control character but line breaks and tabs (text, not terminal commands), and the
    ANSI sequence shown as its escape."""
    assert raw_controls(text, allowed) == [], "control characters reached the output raw"
    assert "\\x1b[31mRED\\x1b[0m" in text, "the ANSI sequence is shown as a visible escape"


# -- the function ----------------------------------------------------------------------------
def test_every_control_character_becomes_a_visible_escape() -> None:
    shown = safe_text(CONTROLS, multiline=False)
    assert raw_controls(shown, allowed="") == []
    expected = "".join("\\t" if c == "\t" else "\\n" if c == "\n" else "\\r" if c == "\r"
                       else f"\\x{ord(c):02x}" for c in CONTROLS)
    assert shown == expected


def test_multiline_text_keeps_its_lines_and_tabs_but_not_a_lone_carriage_return() -> None:
    assert safe_text("a\r\nb\tc\rd") == "a\nb\tc\\rd"
    assert safe_text("a\nb\tc", multiline=False) == "a\\nb\\tc"


def test_printable_text_is_left_alone() -> None:
    text = "Paris — ምስራቅ, অসমীয়া, مرحبا\u200d, emoji 👩\u200d💻, [INST] \\x1b"
    assert safe_text(text) is text or safe_text(text) == text


def test_a_lone_surrogate_is_escaped_so_the_text_can_be_encoded() -> None:
    assert safe_text("a\udcffb").encode("utf-8") == b"a\\udcffb"


# -- messages, report tables, --list, the headless renderer ---------------------------------
def test_an_error_quoting_a_cell_shows_escapes() -> None:
    error = DataError(f"row 3 has an odd answer: {EVIL!s}", where=f"data.csv:{EVIL}",
                      fix=f"clean the cell {EVIL}")
    assert_escaped(error.render())
    assert_escaped(str(error))


def test_report_md_cells_show_escapes() -> None:
    from recipes.report import render_markdown

    sample = {"row": 1, "prompt": EVIL, "reference": EVIL, "base": EVIL, "finetuned": EVIL,
              "base_score": 0.0, "finetuned_score": 1.0, "delta": 1.0}
    table = {"eval_set": {"size": 1, "max_new_tokens": 8}, "metrics": {},
             "lengths": {"reference": {"mean_words": 1.0, "median_words": 1.0}},
             "primary_metric": "rougeL", "improved": [sample], "worse": [], "samples": [sample]}
    finetune = {"stage": "finetune", "table": table, "settings": {"optimizer": EVIL},
                "changes": [EVIL]}
    report = {"recipe": "demo", "model": "m", "tiny": True, "stages_run": ["finetune"],
              "stages": {"finetune": finetune}, **table,
              "artifacts": {"adapter": "runs/x/adapter"}}
    assert_escaped(render_markdown(report, plots={}))


def test_staged_report_md_cells_show_escapes() -> None:
    from recipes.report import render_markdown
    from recipes.stages.scratch_data import INFILL_PROMPT

    prompt = INFILL_PROMPT.format(mask="<mask>", text=EVIL)
    sample = {"row": 1, "prompt": prompt, "reference": EVIL, "base": EVIL, "finetuned": EVIL,
              "base_score": 0.0, "finetuned_score": 1.0, "delta": 1.0}
    table = {"eval_set": {"size": 1, "max_new_tokens": 8}, "metrics": {},
             "lengths": {"reference": {"mean_words": 1.0, "median_words": 1.0}},
             "primary_metric": "rougeL", "improved": [sample], "worse": [], "samples": [sample]}
    finetune = {"seconds": 1.0, "adapter_dir": "a", "base_model": EVIL,
                "lora": {"r": 8, "alpha": 16, "target_modules": ["q_proj"], "load_in_4bit": False},
                "steps": 2, "tasks": {}, "table": table}
    report = {"recipe": "gemma3-scratch", "model": "m", "tiny": True,
              "stages_run": ["pretrain", "finetune"], "stages": {"finetune": finetune},
              "artifacts": {}}
    assert_escaped(render_markdown(report, plots={}))


def test_list_shows_escapes(monkeypatch: pytest.MonkeyPatch, capsys, tmp_path: Path) -> None:
    from recipes.registry import bundled
    from tui.cli import main

    demo = bundled()["demo"].read_text(encoding="utf-8")
    # JSON escapes are YAML double-quoted escapes: the description holds every control character
    evil = tmp_path / "evil.yaml"
    evil.write_text(demo.replace("description:", f"description: {json.dumps(EVIL)}\nold:", 1)
                    .replace("\nold:", "\n# old:", 1), encoding="utf-8")
    broken = tmp_path / "broken.yaml"
    broken.write_text(f"name: broken\nbatch_size: {json.dumps(EVIL)}\n", encoding="utf-8")
    monkeypatch.setattr("recipes.registry.bundled", lambda: {"evil": evil, "broken": broken})
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert raw_controls(out) == []
    assert "\\x1b[31mRED" in out.replace("\n", "").replace("│", "").replace(" ", "")


def test_the_headless_renderer_shows_escapes() -> None:
    buffer = io.StringIO()
    render = RichRenderer(Console(file=buffer, force_terminal=False, color_system=None,
                                  width=120))
    for event in (
        ev.RunStarted(run_dir=f"runs/{EVIL}", recipe=EVIL, backend="reference",
                      backend_reason=EVIL, device=EVIL, tiny=True),
        ev.Preflight(splits={"train": 1}, tokens_min=1, tokens_median=1, tokens_max=1,
                     trained_token_share=0.5, truncated=0, no_trained_tokens=0,
                     max_seq_length=8, total_steps=1, notes=[EVIL]),
        ev.Eval(step=1, loss=1.0, perplexity=2.7,
                samples=[ev.Sample(f"[INST] {EVIL} [/INST]", EVIL, ANSI + EVIL)]),
        ev.Failed(error=EVIL, advice=EVIL),
    ):
        render(event)
    out = buffer.getvalue()
    assert raw_controls(out) == []
    assert "\\x1b[31mRED" in out
    assert "[/INST]" in out, "a prompt is printed as text, not read as Rich markup"


# -- the TUI ---------------------------------------------------------------------------------
def screen_lines(app) -> list[str]:
    """Everything the current screen draws: each visible widget's rendered lines."""
    lines = []
    for widget in app.screen.query("*"):
        if widget.display and widget.region.area:
            for strip in widget.render_lines(widget.region.reset_offset):
                lines.append("".join(segment.text for segment in strip))
    return lines


def screen_text(app) -> str:
    return "\n".join(screen_lines(app))


def assert_screen_escaped(app) -> None:
    """Not one control character on any line drawn (a newline or a tab included: a line is
    one row of cells), and the ANSI sequence shown as its escape somewhere."""
    assert [raw_controls(line, allowed="") for line in screen_lines(app)
            if raw_controls(line, allowed="")] == []
    assert "\\x1b[31mRED" in screen_text(app)


def write_evil_run(runs: Path) -> Path:
    run_dir = runs / "20261121-120000-evil"
    run_dir.mkdir(parents=True)
    t = 1795300000.0
    sample = ev.Sample(prompt=EVIL, reference=EVIL, output=ANSI + EVIL)
    events = [
        ev.RunStarted(run_dir=str(run_dir), recipe=f"demo{ANSI}", backend="reference",
                      backend_reason=EVIL, device=EVIL, tiny=True, time=t),
        ev.Preflight(splits={"train": 1}, tokens_min=1, tokens_median=1, tokens_max=1,
                     trained_token_share=0.5, truncated=0, no_trained_tokens=0,
                     max_seq_length=8, total_steps=10, notes=[EVIL], time=t + 1),
        ev.Step(step=5, total_steps=10, epoch=0.5, loss=2.0, learning_rate=1e-3,
                grad_norm=1.0, tokens_per_second=10.0, time=t + 2),
        ev.Eval(step=5, loss=2.5, perplexity=12.0, samples=[sample], time=t + 3),
        ev.Failed(error=EVIL, advice=EVIL, step=5, time=t + 4),
    ]
    (run_dir / "events.jsonl").write_text("".join(e.to_json() + "\n" for e in events),
                                          encoding="utf-8")
    (run_dir / "recipe.yaml").write_text("name: demo\n", encoding="utf-8")
    (run_dir / "report.json").write_text(json.dumps({
        "metrics": {EVIL: {"base": 0.1, "finetuned": 0.2}},
        "samples": [{"prompt": EVIL, "reference": EVIL, "base": EVIL, "finetuned": EVIL}],
    }), encoding="utf-8")
    return run_dir


async def test_the_tui_shows_escapes_on_every_screen(make_app) -> None:
    run_dir = write_evil_run(Path("runs"))
    app = make_app()
    async with app.run_test(size=(120, 40)) as pilot:
        app.open_run(run_dir)
        await until(pilot, lambda: isinstance(app.screen, RunScreen)
                    and "\\x1b[31mRED" in screen_text(app), what="the run's log")
        assert_screen_escaped(app)
        assert "failed" in screen_text(app)
        await pilot.press("e")  # the samples tab
        await until(pilot, lambda: "output" in screen_text(app), what="samples")
        assert_screen_escaped(app)
        await pilot.press("enter")  # Results: report.json's answers and metric names
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen), what="results")
        await until(pilot, lambda: "fine-tuned" in screen_text(app), what="the answers")
        assert_screen_escaped(app)
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="history")
        await until(pilot, lambda: "evil" in screen_text(app), what="the runs table")
        assert_screen_escaped(app)
        assert "demo\\x1b[31mRED" in screen_text(app)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
