"""The Configure screen's data preview: `slothlab data --json` run for the form's values.

The app's `slothlab` command is tests/tui/fake_slothlab.py, whose `data` answers at once with
a fixed preview naming the dataset it was asked about (FAKE_DATA=error: a refusal).
"""

from __future__ import annotations

import pytest
from textual.widgets import Input, Static

from tests.tui.test_screens import until
from tui.screens.configure import ConfigureScreen
from tui.widgets.data_preview import DataPreview, preview_text

SIZE = (120, 40)


def shown(screen: ConfigureScreen) -> str:
    return str(screen.query_one(DataPreview).query_one("#preview-body", Static).render())


async def open_configure(app, pilot) -> ConfigureScreen:
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ConfigureScreen), what="Configure")
    return app.screen


async def test_the_preview_follows_the_form(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await until(pilot, lambda: "read data/demo_qa.jsonl" in shown(screen),
                    what="the demo's sample previewed")
        assert "sharegpt" in shown(screen) and "6 plus 2 is 8." in shown(screen)
        editor = await screen.form.show_field("sample_dataset")  # the demo is tiny: its sample
        editor.query_one(Input).value = "data/finetome_sample.jsonl"
        await until(pilot, lambda: "read data/finetome_sample.jsonl" in shown(screen),
                    what="the preview of the new value")


async def test_a_refusal_is_shown_with_its_fix(make_app, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FAKE_DATA", "error")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await until(pilot, lambda: "empty answer" in shown(screen), what="the refusal")
        assert "max_dropped_fraction=0.34" in shown(screen)


def test_trained_parts_are_highlighted() -> None:
    text = preview_text({
        "layout": "qa", "columns": {"instruction": "question", "response": "answer"},
        "preflight": {"rows": 3, "examples": 3, "splits": {"train": 3}, "tokens_min": 5,
                      "tokens_median": 6, "tokens_max": 7, "trained_token_share": 0.5},
        "notes": [], "examples": [{"where": "row 2", "tokens": 6, "trained_tokens": 3, "parts": [
            {"text": "Q?", "trained": False, "tokens": 3},
            {"text": "A.", "trained": True, "tokens": 3}]}]})
    trained = [text.plain[s.start:s.end] for s in text.spans if "green" in str(s.style)]
    assert trained == ["A."]
