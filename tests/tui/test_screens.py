"""Each screen's behaviour, driven with Pilot and the fake `slothlab` event stream."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from textual.pilot import Pilot
from textual.widgets import Checkbox, Input

from recipes.events import Step
from recipes.schema import load_recipe
from tests.tui.conftest import (
    CPU_ONLY,
    DRIVER_12,
    GPU_12,
    device_probe,
    driver_probe,
    write_full_recipe,
)
from tui.device import DeviceInfo
from tui.screens.compare import CompareScreen
from tui.screens.configure import ConfigureScreen
from tui.screens.confirm import ConfirmScreen
from tui.screens.history import HistoryScreen
from tui.screens.results import ResultsScreen
from tui.screens.run import RunScreen
from tui.widgets.error_panel import ErrorPanel
from tui.widgets.field_editor import FieldEditor
from tui.widgets.fit_view import FitView
from tui.widgets.metrics_table import MetricsTable
from tui.widgets.recipe_detail import RecipeDetail
from tui.widgets.recipe_table import RecipeTable
from tui.widgets.runs_table import RunsTable

SIZE = (120, 40)


async def until(pilot: Pilot, check: Callable[[], object], timeout: float = 45.0,
                what: object = "") -> None:
    """Wait for ``check()``; ``what`` (or a callable giving it) names it if the time runs out.
    The timeout is a failure deadline, not a speed limit: a busy 2-core CI machine needs room."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            said = what() if callable(what) else what
            raise AssertionError(f"timed out waiting for {said or check}")
        await pilot.pause(0.05)


def text_of(widget) -> str:
    """The plain text a widget shows now."""
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


async def shows(pilot: Pilot, widget, *texts: str, absent: tuple[str, ...] = ()) -> None:
    """Wait until ``widget`` shows every one of ``texts`` and none of ``absent`` (text folds).
    A widget of auto height is laid out a refresh after its content changes, so a first line
    can be visible before the rest: wait for all of it rather than assert right after one."""
    def ok() -> bool:
        shown = words(widget)
        return all(t in shown for t in texts) and not any(t in shown for t in absent)

    await until(pilot, ok, what=lambda: f"{texts} (and not {absent}) in {words(widget)!r}")


def showing(app, screen_type: type) -> bool:
    """The app shows a screen of ``screen_type``, composed and mounted (queries work)."""
    return isinstance(app.screen, screen_type) and app.screen.is_mounted


def words(widget) -> str:
    """``text_of`` with line breaks and runs of spaces as single spaces (text folds)."""
    return " ".join(text_of(widget).split())


def fake_stream(monkeypatch: pytest.MonkeyPatch, **env: str) -> None:
    for key, value in env.items():
        monkeypatch.setenv(f"FAKE_{key.upper()}", value)


# -- Recipes ---------------------------------------------------------------------------------
async def test_recipes_lists_the_demo_with_its_fit_and_the_device(make_app) -> None:
    app = make_app(device_probe=device_probe(GPU_12), driver_probe=driver_probe(DRIVER_12))
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(RecipeTable)
        await until(pilot, lambda: "fits" in str(table.get_row_at(0)), what="fit badge")
        row = [str(cell) for cell in table.get_row_at(0)]
        assert row[0] == "demo" and row[1] == "fits" and row[2] == "1.9 GiB"
        assert row[3] == "chat" and "(tiny)" in row[4] and row[5].startswith("demo_qa")
        assert app.focused is table, "the list has focus first"
        await shows(pilot, app.screen.query_one(FitView), "12 GiB card (detected)")


async def test_without_a_gpu_the_badge_is_neutral_until_a_card_is_chosen(make_app) -> None:
    write_full_recipe()  # row 1: a full recipe, which needs a GPU; row 0 (demo) is tiny
    app = make_app()  # the device probe says: CPU only
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(RecipeTable)
        await until(pilot, lambda: "CPU only" in text_of(app.screen.query_one("DevicePanel Static")))
        await until(pilot, lambda: table.row_count > 1 and str(table.get_row_at(1)[1]) == "no GPU",
                    what="badge")
        assert str(table.get_row_at(0)[1]) == "CPU ok", "a tiny recipe trains on this CPU"
        assert str(table.get_row_at(1)[2]).endswith("GiB"), "the need is still shown"
        await shows(pilot, app.screen.query_one("DevicePanel Static"), "reference")
        table.move_cursor(row=1)
        await shows(pilot, app.screen.query_one(FitView), "GiB on a GPU", "pick a card size",
                    absent=("fits",))
        assert "auto: no GPU detected" in text_of(app.screen.query_one("#card #label"))
        app.card = "6"
        await until(pilot, lambda: str(table.get_row_at(1)[1]) == "fits", what="chosen card")
        assert str(table.get_row_at(0)[1]) == "fits", "with a card chosen, tiny ones are checked"
        await shows(pilot, app.screen.query_one(FitView), "6 GiB card")


async def test_a_failing_device_check_is_shown_not_raised(make_app) -> None:
    app = make_app(device_probe=device_probe(error="ModuleNotFoundError: no kernels_check.cli"),
                   driver_probe=driver_probe(error=RuntimeError("NVML exploded")))
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one("DevicePanel Static")
        await until(pilot, lambda: "kernels_check.cli" in text_of(panel) and not app.device.checking,
                    what="the failure")
        shown = " ".join(text_of(panel).split())
        assert "device unknown (driver query failed: RuntimeError: NVML exploded; " \
               "ModuleNotFoundError: no kernels_check.cli)" in shown
        assert "reference" not in shown, "no backend claimed when nothing is known"
        assert app.card_gib() == (None, "unknown")


async def test_the_driver_fills_the_panel_before_the_full_check_answers(make_app) -> None:
    full_check = asyncio.Event()

    async def slow_check():
        await full_check.wait()
        return DeviceInfo(raw=GPU_12)

    app = make_app(device_probe=slow_check, driver_probe=driver_probe(DRIVER_12))
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one("DevicePanel Static")
        # "checking": the libraries are still being checked
        await shows(pilot, panel, "RTX 3060", "12.0 GiB (11.2 free)", "550.54.14", "checking")
        assert app.card_gib() == (12.0, "detected"), "the card size comes from the driver"
        full_check.set()
        await until(pilot, lambda: app.device.full, what="the full check")
        await shows(pilot, panel, "2.14.1", "unsloth: CUDA device and unsloth importable",
                    absent=("checking",))


async def test_without_a_driver_the_panel_says_so_and_names_the_backend(make_app) -> None:
    never = asyncio.Event()

    async def endless_check():
        await never.wait()
        return DeviceInfo()

    app = make_app(device_probe=endless_check)  # the driver: none
    async with app.run_test(size=(80, 24)) as pilot:
        panel = app.screen.query_one("DevicePanel Static")
        await shows(pilot, panel, "no NVIDIA driver", "reference: no CUDA device")
        assert app.card_gib() == (None, "none")


async def test_on_a_cpu_the_panel_says_unsloth_imports_but_auto_picks_reference(make_app) -> None:
    cpu = {**CPU_ONLY, "unsloth": "2026.10.9", "unsloth_importable": True,
           "unsloth_problem": None}
    app = make_app(device_probe=device_probe(cpu))
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one("DevicePanel Static")
        await until(pilot, lambda: "2026.10.9" in text_of(panel), what="the full check")
        shown = " ".join(text_of(panel).split())
        assert "reference: no CUDA device" in shown
        assert "2026.10.9 imports (its CPU backend: --backend unsloth uses it; auto picks " \
               "reference)" in shown


async def test_a_detected_gpu_sets_the_card_size(make_app) -> None:
    app = make_app(device_probe=device_probe(GPU_12), driver_probe=driver_probe(DRIVER_12))
    async with app.run_test(size=SIZE) as pilot:
        fit = app.screen.query_one(FitView)
        await until(pilot, lambda: "12 GiB card (detected)" in text_of(fit))
        assert "RTX 3060" in text_of(app.screen.query_one("DevicePanel Static"))


async def test_card_size_and_tiny_mode_are_one_key_away(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("c")  # opens the card select
        await pilot.press("down", "enter")  # the first size: 6 GiB
        await until(pilot, lambda: app.card == "6")
        await until(pilot, lambda: "6 GiB card" in text_of(app.screen.query_one(FitView)))
        assert not app.tiny
        app.screen.query_one(RecipeTable).focus()
        await pilot.press("t")
        assert app.tiny and app.screen.query_one("#tiny", Checkbox).value


async def test_the_detail_pane_shows_the_tiny_recipe_in_tiny_mode(make_app) -> None:
    write_full_recipe()
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")  # the saved, full recipe
        detail = app.screen.query_one(RecipeDetail)
        await until(pilot, lambda: "someone/chat-data" in text_of(detail))
        full = text_of(detail)
        assert "1 epoch ·" in full and "batch 4×1" in full and "lr 0.0002" in full
        assert "random miniature" not in full
        await pilot.press("t")
        await until(pilot, lambda: "demo_qa.jsonl (sample" in text_of(detail))
        tiny = text_of(detail)
        assert "7 steps" in tiny and "batch 8×1" in tiny and "lr 0.003" in tiny
        assert "random miniature" in tiny and "someone/chat-data" not in tiny


async def test_a_full_recipe_on_a_cpu_asks_first_and_offers_tiny_mode(make_app,
                                                                     monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5")
    write_full_recipe()
    app = make_app()  # CPU only
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.device.known)
        await pilot.press("down", "s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "No CUDA GPU here" in text_of(app.screen.query_one("#question"))
        await pilot.press("n")
        assert app.live_state is None, "no answer, no run"
        # The palette's "Start full" (the top match for "tiny" too) asks the same.
        start = next(c for c in app.get_system_commands(app.screen) if c.title == "Start full")
        start.callback()
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("t")  # tiny mode instead
        await until(pilot, lambda: app.live_state and app.live_state.status == "finished")
        assert app.live_state.started.tiny and app.live_state.started.recipe == "full"
        await pilot.press("1", "s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # start anyway: the full recipe
        await until(pilot, lambda: app.live_state.started is not None
                    and not app.live_state.started.tiny, what="a full run")


async def test_a_full_recipe_with_a_gpu_starts_at_once(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5")
    write_full_recipe()
    app = make_app(device_probe=device_probe(GPU_12), driver_probe=driver_probe(DRIVER_12))
    async with app.run_test(size=SIZE) as pilot:
        await until(pilot, lambda: app.device.known)
        await pilot.press("down", "s")
        await until(pilot, lambda: app.live_state and app.live_state.status == "finished")
        assert not app.live_state.started.tiny


async def test_quit_stays_in_the_footer_at_80_columns(make_app, past_runs) -> None:
    from textual.widgets._footer import FooterKey

    def quit_visible() -> bool:
        keys = {k.key: k.region for k in app.screen.query(FooterKey)}
        if "q" not in keys or "ctrl+p" not in keys or not keys["q"].width:
            return False  # the footer is not laid out yet
        return keys["q"].right <= keys["ctrl+p"].x

    app = make_app()
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, quit_visible, what="Quit in the Recipes footer")
        app.open_run(past_runs["stopped"])  # the longest footer: Back, Resume, Results
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await until(pilot, quit_visible, what="Quit in a reopened stopped run's footer")


# -- Configure -------------------------------------------------------------------------------
async def open_configure(app, pilot: Pilot) -> ConfigureScreen:
    await pilot.press("enter")
    await until(pilot, lambda: isinstance(app.screen, ConfigureScreen))
    await pilot.pause(0.1)
    return app.screen


async def type_into(pilot: Pilot, screen: ConfigureScreen, field: str, text: str,
                    keys: bool = False) -> FieldEditor:
    """Replace a field's text: key by key, or at once (the same Input.Changed path, faster)."""
    editor = await screen.form.show_field(field)
    field_input = editor.query_one(Input)
    field_input.focus()
    field_input.value = ""
    if keys:
        await pilot.press(*text)
    else:
        field_input.value = text
    await pilot.pause()
    return editor


async def set_switch(pilot: Pilot, screen: ConfigureScreen, field: str, on: bool) -> FieldEditor:
    editor = await screen.form.show_field(field)
    editor.query_one(Checkbox).value = on
    await pilot.pause()
    return editor


def help_of(editor: FieldEditor) -> str:
    return str(editor.query_one(".help").render())


async def test_the_form_has_every_schema_field(make_app) -> None:
    from recipes.schema import describe_fields

    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        every = {f["name"] for f in describe_fields()}
        assert set(screen.form.values) == every
        for name in every:
            await screen.form.show_field(name)
        assert {e.name_ for e in screen.form.editors} == every
        editor = await screen.form.show_field("lora_r")
        assert str(editor.query_one(".bounds").render()) == "[1, 1024]"
        assert "LoRA rank" in str(editor.query_one(".help").render())


async def test_the_form_validates_as_you_type_and_refuses_to_start(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        editor = await type_into(pilot, screen, "learning_rate", "fast", keys=True)
        assert editor.has_class("-invalid") and "expected a number" in editor.error
        editor = await type_into(pilot, screen, "lora_r", "0")
        assert "out of range, must be >= 1" in editor.error
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfigureScreen) and app.live_state is None
        await until(pilot, lambda: "2 problem(s)" in text_of(screen.query_one("#status")))
        await type_into(pilot, screen, "learning_rate", "1e-3")
        await type_into(pilot, screen, "lora_r", "8")
        await until(pilot, lambda: screen.recipe is not None, what="revalidation")
        assert screen.recipe.learning_rate == 1e-3 and screen.recipe.lora_r == 8
        assert screen.form.modified == ["lora_r", "learning_rate"]


async def test_a_cross_field_rule_is_reported(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "val_fraction", "0.45")
        await type_into(pilot, screen, "test_fraction", "0.45")
        await until(pilot, lambda: "leaves almost nothing" in " ".join(screen.errors))
        assert screen.recipe is None


async def test_the_fit_estimate_follows_the_form(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        fit = screen.query_one(FitView)
        await until(pilot, lambda: "on a GPU" in text_of(fit), what="no GPU: no verdict")
        app.card = "8"
        await until(pilot, lambda: "fits" in text_of(fit))
        await type_into(pilot, screen, "batch_size", "64")
        await shows(pilot, fit, "does not fit", "lower batch_size")  # the verdict and advice


async def test_a_missing_data_file_is_flagged_and_hub_ids_are_not(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await set_switch(pilot, screen, "tiny", False)  # demo is tiny: a full run reads dataset
        editor = await type_into(pilot, screen, "dataset", "data/nope.jsonl")
        assert editor.has_class("-invalid") and "no such file: data/nope.jsonl" in editor.error
        await until(pilot, lambda: "1 problem(s)" in text_of(screen.query_one("#status")))
        for fine in ("someone/chat-data", "data/demo_qa.jsonl"):  # a hub id; a bundled file
            editor = await type_into(pilot, screen, "dataset", fine)
            assert not editor.error, fine
        editor = await type_into(pilot, screen, "sample_dataset", "./missing.csv")
        assert "no such file" in editor.problem and not editor.error, "a full run: unread"
        assert editor.has_class("-unread") and "only tiny mode reads it" in help_of(editor)
        await until(pilot, lambda: screen.recipe is not None, what="a warning, not an error")
        await set_switch(pilot, screen, "tiny", True)
        await until(pilot, lambda: screen.form.invalid == ["sample_dataset"], what="tiny reads it")
        assert "no such file" in editor.error and editor.has_class("-invalid")
        editor = await type_into(pilot, screen, "sample_dataset", "imdb")
        assert not editor.problem, "no data suffix, no ./: a hub id"
        editor = await type_into(pilot, screen, "sample_dataset", "data")
        assert not editor.error, "a folder of data files is a dataset (the run finds data/)"
        editor = await type_into(pilot, screen, "sample_dataset", "data/nothing-*.jsonl")
        assert "no such file" in editor.error, "a glob that matches nothing"


async def test_a_recipe_naming_a_missing_file_is_invalid_from_the_start(make_app) -> None:
    write_full_recipe(dataset="/nowhere/train.parquet")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")
        screen = await open_configure(app, pilot)
        await until(pilot, lambda: "no such file" in text_of(screen.query_one("#status")))
        assert screen.recipe is None and screen.form.invalid == ["dataset"]
        editor = await screen.form.show_field("dataset")
        assert editor.has_class("-invalid")


async def test_tiny_mode_checks_the_sample_files_the_run_reads(make_app, monkeypatch) -> None:
    # saudial-lfm2 / gemma3-scratch: the full data is not in the project, the samples are
    fake_stream(monkeypatch, steps="5")
    write_full_recipe(dataset="corpus/missing.jsonl", extra_datasets=["corpus/pairs.jsonl"],
                      sample_extra_datasets=["data/demo_qa.jsonl"])
    app = make_app(tiny=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")
        screen = await open_configure(app, pilot)
        status = screen.query_one("#status")
        await until(pilot, lambda: "valid ✓" in text_of(status), what="valid in tiny mode")
        assert screen.recipe is not None and screen.form.invalid == []
        for name, reads in (("dataset", "sample_dataset"),
                            ("extra_datasets", "sample_extra_datasets")):
            editor = await screen.form.show_field(name)
            assert "no such file" in editor.problem and not editor.error, name
            assert f"tiny mode reads {reads}" in help_of(editor), name
        await set_switch(pilot, screen, "tiny", False)  # a full run reads the full files
        await until(pilot, lambda: screen.form.invalid == ["dataset", "extra_datasets"],
                    what="the full files checked")
        await pilot.press("ctrl+r")
        assert isinstance(app.screen, ConfigureScreen) and app.live_state is None
        await set_switch(pilot, screen, "tiny", True)
        await until(pilot, lambda: screen.recipe is not None, what="valid again")
        await pilot.press("ctrl+r")  # accepted: the run starts
        await until(pilot, lambda: app.live_state and app.live_state.status == "finished")
        ran = load_recipe(app.live_state.run_dir / "recipe.yaml")
        assert ran.tiny and ran.sample_dataset == "data/demo_qa.jsonl"


async def test_switching_tiny_on_in_the_form_shows_the_overrides(make_app, monkeypatch) -> None:
    # medqa-tinyllama: the form showed max_steps=50 and a tiny run trained 300 steps
    fake_stream(monkeypatch, steps="5")
    write_full_recipe(max_steps=50)  # tiny_overrides: max_steps 7, learning_rate 3e-3, batch 8
    app = make_app()  # tiny mode off: the form opens on the full recipe
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")
        screen = await open_configure(app, pilot)
        form = screen.form
        assert form.values["max_steps"] == 50 and not form.values["tiny"]
        await set_switch(pilot, screen, "tiny", True)
        await until(pilot, lambda: form.values["max_steps"] == 7, what="override applied")
        assert form.values["learning_rate"] == 3e-3 and form.values["batch_size"] == 8
        editor = await form.show_field("max_steps")
        await until(pilot, lambda: editor.query_one(Input).value == "7", what="shown")
        assert editor.has_class("-modified")
        assert {"tiny", "max_steps", "learning_rate", "batch_size"} <= set(form.modified)
        await set_switch(pilot, screen, "tiny", False)  # off again: the values come back
        await until(pilot, lambda: form.values["max_steps"] == 50, what="restored")
        assert form.values["learning_rate"] == 2e-4 and form.values["batch_size"] == 4
        await until(pilot, lambda: screen.recipe is not None and not form.modified)
        await set_switch(pilot, screen, "tiny", True)
        await until(pilot, lambda: form.values["max_steps"] == 7)
        await type_into(pilot, screen, "max_steps", "50")  # what the form shows ...
        # screen.recipe follows edits after a short pause; validate() is what ctrl+r uses
        recipe, errors = screen.form.validate()
        assert not errors and recipe is not None
        assert recipe.tiny and recipe.max_steps == 50 and recipe.learning_rate == 3e-3
        await pilot.press("ctrl+r")
        await until(pilot, lambda: app.live_state and app.live_state.status == "finished")
        ran = load_recipe(app.live_state.run_dir / "recipe.yaml")
        assert ran.tiny and ran.max_steps == 50 and ran.learning_rate == 3e-3, "... is what runs"


async def test_a_recipe_with_invalid_tiny_overrides_is_refused_in_tiny_mode(make_app) -> None:
    write_full_recipe(tiny_overrides={"learning_rate": "nan", "max_steps": "7"})
    app = make_app(tiny=True)
    async with app.run_test(size=SIZE) as pilot:
        table = app.screen.query_one(RecipeTable)
        await until(pilot, lambda: table.row_count > 1)
        await pilot.press("down")
        detail = app.screen.query_one(RecipeDetail)
        await shows(pilot, detail, "does not load in tiny mode", "full.yaml",
                    "tiny_overrides.learning_rate", "expected a finite number")
        assert str(table.get_row_at(1)[1]) == "invalid"
        await pilot.press("enter")  # configure
        await pilot.press("s")  # start
        await pilot.pause(0.2)
        assert not isinstance(app.screen, ConfigureScreen) and app.live_state is None
        await pilot.press("t")  # tiny mode off: the full recipe is fine
        await until(pilot, lambda: "someone/chat-data" in text_of(detail))
        screen = await open_configure(app, pilot)
        await until(pilot, lambda: screen.recipe is not None)
        await set_switch(pilot, screen, "tiny", True)  # the same refusal, inside the form
        await until(pilot, lambda: screen.form.invalid == ["tiny_overrides"])
        await until(pilot, lambda: screen.recipe is None, what="revalidation")
        assert "expected a finite number" in " ".join(screen.errors)
        assert screen.form.values["max_steps"] == 0, "nothing half-applied"
        editor = await screen.form.show_field("tiny_overrides")
        assert editor.has_class("-invalid") and "learning_rate" in editor.error
        await set_switch(pilot, screen, "tiny", False)
        await until(pilot, lambda: screen.recipe is not None and not screen.form.invalid)


async def test_esc_asks_before_dropping_unsaved_changes(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await pilot.press("escape")  # nothing changed: straight back
        await until(pilot, lambda: not isinstance(app.screen, ConfigureScreen))
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "lora_r", "8")
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        assert "lora_r" in text_of(app.screen.query_one("#detail"))
        await pilot.press("n")  # keep editing
        assert app.screen is screen and screen.form.values["lora_r"] == 8
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")  # discard
        await until(pilot, lambda: not isinstance(app.screen, (ConfigureScreen, ConfirmScreen)))
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "name", "kept")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        await pilot.press("enter")  # saved: nothing is lost by leaving
        await until(pilot, lambda: Path("my_recipes/kept.yaml").is_file())
        await until(pilot, lambda: app.screen is screen)
        await pilot.press("escape")
        await until(pilot, lambda: not isinstance(app.screen, ConfigureScreen), what="no question")


async def test_tiny_mode_opens_the_form_with_the_tiny_overrides_applied(make_app,
                                                                      monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5")
    write_full_recipe()
    app = make_app(tiny=True)
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("down")
        screen = await open_configure(app, pilot)
        values = screen.form.values
        assert values["tiny"] and values["max_steps"] == 7 and values["batch_size"] == 8
        assert screen.form.modified == [], "the overrides are the starting point, not edits"
        await type_into(pilot, screen, "learning_rate", "0.01")
        await until(pilot, lambda: screen.recipe is not None and screen.recipe.learning_rate == 0.01)
        await pilot.press("ctrl+r")  # tiny: no question about the CPU
        await until(pilot, lambda: app.live_state and app.live_state.status == "finished")
        ran = load_recipe(app.live_state.run_dir / "recipe.yaml")
        assert ran.tiny and ran.max_steps == 7 and ran.learning_rate == 0.01, \
            "the edit wins over the tiny override"


async def test_save_as_a_new_recipe(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "name", "mine")
        await type_into(pilot, screen, "lora_r", "8")
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        await pilot.press("enter")  # accept the proposed path
        await until(pilot, lambda: Path("my_recipes/mine.yaml").is_file())
        saved = load_recipe(Path("my_recipes/mine.yaml"))
        assert saved.name == "mine" and saved.lora_r == 8
        assert [e.name for e in app.catalog] == ["demo", "mine"]


async def test_start_from_the_form_runs_the_edited_recipe(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="10")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        screen = await open_configure(app, pilot)
        await type_into(pilot, screen, "name", "edited")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await until(pilot, lambda: app.live_state.status == "finished")
        assert app.live_state.run_dir.name.endswith("-edited")


# -- Run -------------------------------------------------------------------------------------
async def test_run_start_stop_resume_results(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="100", eval_every="5")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        state = app.live_state
        await until(pilot, lambda: state.current_step >= 6, what="steps arriving")
        screen = app.screen
        await shows(pilot, screen.query_one("#progress-text"), "step")
        await shows(pilot, screen.query_one("MemoryGauge"), "RAM")
        assert "Samples @" in str(screen.query_one("TabbedContent").get_tab("samples").label)
        await pilot.press("s")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: state.status == "stopped", what="stopped")
        assert state.resumable
        monkeypatch.setenv("FAKE_STEPS", str(state.current_step + 5))
        await pilot.pause(0.3)
        await pilot.press("r")
        await until(pilot, lambda: app.live_state is not state)
        resumed = app.live_state
        await until(pilot, lambda: resumed.status == "finished", what="finished")
        assert resumed.run_dir == state.run_dir
        # (a slow machine streams hundreds of steps before the stop: the series is then
        # downsampled, its first point the end of its first bucket)
        series = resumed.train_loss
        assert series.points()[0][0] <= series.stride, "the history before the stop is kept"
        await pilot.pause(0.3)
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        table = app.screen.query_one(MetricsTable)
        assert table.row_count == 2  # rouge_l and exact_match from the metrics events
        await shows(pilot, app.screen.query_one("#no-report"), "no evaluation report yet")


async def test_a_failed_run_shows_the_error_and_the_app_stays_up(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, mode="fail")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state and app.live_state.status == "failed")
        panel = app.screen.query_one(ErrorPanel)
        await until(pilot, lambda: panel.display, what="the error panel")
        # "run directory is kept": there is one to reopen
        await shows(pilot, panel, "CUDA out of memory", "lower batch_size", "run directory is kept")
        assert (app.live_state.run_dir / "events.jsonl").is_file()
        await pilot.press("1")  # still usable
        assert app.current_mode == "recipes"


async def test_refused_input_shows_the_cli_error(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, mode="bad")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state and app.live_state.status == "failed")
        panel = app.screen.query_one(ErrorPanel)
        await until(pilot, lambda: panel.display and "expected a number" in text_of(panel),
                    what=lambda: f"the CLI's error in the panel, shown: {words(panel)!r}")
        assert app.live_state.run_dir is None
        assert "run directory" not in text_of(panel), "refused before a run directory existed"
        bar = app.screen.query_one("RunProgress ProgressBar")
        assert bar.total is not None, "a failed run's bar stands still"


async def test_only_one_run_at_a_time(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="50")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        await until(pilot, lambda: app.live_state.current_step > 0)
        first = app.live_state
        await pilot.press("1", "s")
        assert app.live_state is first
        app.live.request_stop()
        await until(pilot, lambda: first.status == "stopped")


async def test_quit_with_a_run_asks_then_stops_it(make_app, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="5000", rate="50")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("s")
        state = app.live_state
        await until(pilot, lambda: state.current_step > 0)
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("n")
        assert state.live
        await pilot.press("q")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: not app.is_running, what="app exit")
    assert state.status == "stopped"


# -- History ---------------------------------------------------------------------------------
async def test_history_lists_runs_and_compares_them(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 3)
        statuses = [str(table.get_row_at(i)[2]) for i in range(3)]
        assert statuses == ["failed", "stopped", "finished"]
        await pilot.press("c")  # fewer than two marked: a hint, no screen
        assert not isinstance(app.screen, CompareScreen)
        await pilot.press("down", "space", "down", "space", "c")
        await until(pilot, lambda: isinstance(app.screen, CompareScreen))
        assert [r.name for r in app.screen.runs] == ["20261121-103000-demo",
                                                     "20261121-101500-demo"]
        await pilot.press("escape")
        await pilot.press("up", "up", "enter")  # the failed run
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await shows(pilot, app.screen.query_one(ErrorPanel), "CUDA out of memory")


async def test_a_reopened_run_goes_back_to_the_list(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        await until(pilot, lambda: app.screen.query_one(RunsTable).row_count == 3)

        async def reopen() -> RunScreen:
            await pilot.press("enter")
            await until(pilot, lambda: isinstance(app.screen, RunScreen))
            return app.screen

        screen = await reopen()
        assert "escape" in screen.active_bindings, "a reopened run shows Esc Back"
        await pilot.press("escape")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="Esc")
        await reopen()
        await pilot.press("enter")  # its results, on top of it
        await until(pilot, lambda: isinstance(app.screen, ResultsScreen))
        await pilot.press("3")
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="3")
        await reopen()
        history = next(c for c in app.get_system_commands(app.screen) if c.title == "History")
        history.callback()
        await until(pilot, lambda: isinstance(app.screen, HistoryScreen), what="the palette")
        await pilot.press("2")  # the live run's screen has no Back: there is nothing under it
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        assert "escape" not in app.screen.active_bindings


async def test_history_resumes_a_stopped_run(make_app, past_runs, monkeypatch) -> None:
    fake_stream(monkeypatch, steps="130")
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3", "down", "r")
        await until(pilot, lambda: app.live_state is not None)
        assert app.live_state.run_dir == past_runs["stopped"]
        await until(pilot, lambda: app.live_state.status == "finished")
        assert app.live_state.started.resumed_from_step == 120
        assert app.current_mode == "run"


async def test_a_running_run_is_followed(make_app, past_runs, monkeypatch) -> None:
    from tests.tui.conftest import write_run

    run = write_run(Path("runs"), "20261121-110000-demo", steps=300, until=50, outcome="none")
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        await pilot.press("3")
        table = app.screen.query_one(RunsTable)
        await until(pilot, lambda: table.row_count == 4)
        assert str(table.get_row_at(0)[2]) == "running"
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        state = app.screen.state
        with open(run / "events.jsonl", "a", encoding="utf-8") as fh:
            fh.write(Step(step=55, total_steps=300, epoch=2.0, loss=1.5, learning_rate=1e-3,
                          grad_norm=1.0, tokens_per_second=7000.0).to_json() + "\n")
        await until(pilot, lambda: state.current_step == 55, what="tail")


async def test_after_the_last_step_the_eta_gives_way_to_the_final_eval(make_app,
                                                                       monkeypatch) -> None:
    from tests.tui.conftest import write_run

    run = write_run(Path("runs"), "20261121-120000-demo", steps=300, until=300, outcome="none")
    monkeypatch.setattr("tui.runstate.pid_alive", lambda pid: True)
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(run)
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause(0.1)
        progress = app.screen.query_one("#progress-text")
        await until(pilot, lambda: "final eval…" in text_of(progress))
        assert "ETA" not in text_of(progress)


async def test_results_say_which_split_each_loss_is_from(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        app.open_run(past_runs["finished"])
        await until(pilot, lambda: isinstance(app.screen, RunScreen))
        await pilot.pause(0.1)
        await pilot.press("enter")
        await until(pilot, lambda: showing(app, ResultsScreen))
        box = app.screen.query_one("#metrics-box")
        await until(pilot, lambda: "test split, 25 examples" in str(box.border_title),
                    what=lambda: f"report.json's eval_set in the title, shown: {box.border_title}")
        await shows(pilot, app.screen.query_one("ArtifactsView"), "val loss @300")
        artifacts = text_of(app.screen.query_one("ArtifactsView"))
        for line in artifacts.splitlines():  # a path breaks after a /, never inside a name
            assert not line.strip().startswith(("apter", "port.md", "ents.jsonl")), line


# -- App-wide --------------------------------------------------------------------------------
async def test_theme_toggle(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        assert app.current_theme.dark
        await pilot.press("ctrl+t")
        assert not app.current_theme.dark
        await pilot.press("ctrl+t")
        assert app.current_theme.dark


async def test_command_palette_has_the_main_actions(make_app) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Recipes", "Run", "History", "Start demo", "Configure demo", "Resume run",
                      "Light / dark theme", "Tiny mode on"):
            assert title in titles
        await pilot.press("ctrl+p")
        await pilot.pause(0.2)
        await pilot.press(*"History")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await until(pilot, lambda: app.current_mode == "history")


async def test_footer_keys_per_screen(make_app, past_runs) -> None:
    app = make_app()
    async with app.run_test(size=SIZE) as pilot:
        keys = set(app.screen.active_bindings)
        assert {"enter", "s", "t", "c", "1", "2", "3", "q"} <= keys
        await pilot.press("3")
        await until(pilot, lambda: {"enter", "space", "c", "f5"} <= set(app.screen.active_bindings),
                    what=lambda: f"History's keys, shown: {sorted(app.screen.active_bindings)}")


async def test_runs_dir_option(tmp_path: Path) -> None:
    from tui.app import build_parser

    args = build_parser().parse_args(["--runs-dir", str(tmp_path / "elsewhere"), "--tiny"])
    assert args.runs_dir == tmp_path / "elsewhere" and args.tiny


def test_no_test_leaves_a_process_behind() -> None:
    """The fake runs are children of this process; none may outlive its test."""
    import os

    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    if children.exists():
        assert children.read_text().strip() == ""
