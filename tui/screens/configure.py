"""Configure: the recipe's fields as a form, checked as you type, with the fit estimate live.

The form starts from the recipe as a run would train it (in tiny mode: its tiny overrides
applied), and marks what you change from there. Esc asks before it drops unsaved changes.
"""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import Screen
from textual.timer import Timer
from textual.widgets import Footer, Header, Static

from recipes.safe_text import safe_text
from recipes.schema import Recipe
from tui.catalog import RecipeEntry
from tui.screens.confirm import ConfirmScreen
from tui.widgets.data_preview import DataPreview
from tui.widgets.field_editor import FieldEditor
from tui.widgets.fit_view import FitView
from tui.widgets.recipe_form import RecipeForm

# The fields the VRAM estimate reads (kernels_check.fit.estimate).
FIT_FIELDS = ("model", "tiny", "load_in_4bit", "compute_dtype", "lora_r", "lora_dropout",
              "target_modules", "batch_size", "gradient_accumulation_steps", "max_seq_length",
              "gradient_checkpointing", "optimizer")


class ConfigureScreen(Screen):
    SUB_TITLE = "Configure"
    DEFAULT_CSS = """
    ConfigureScreen {
        layout: horizontal;
    }
    ConfigureScreen RecipeForm {
        width: 1fr;
    }
    ConfigureScreen #side {
        width: 38%;
        max-width: 52;
        min-width: 30;
    }
    ConfigureScreen #fit-box {
        height: auto;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ConfigureScreen #status {
        height: auto;
        padding: 0 1;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    ConfigureScreen #status.-invalid {
        border: round $error;
    }
    ConfigureScreen.-narrow FieldEditor {
        grid-columns: 20 1fr 13;
    }
    ConfigureScreen.-narrow FieldEditor .help {
        padding: 0 0 0 20;
    }
    ConfigureScreen.-narrow #field-help {
        display: none;
    }
    ConfigureScreen #field-help {
        height: auto;
        padding: 0 1;
        border: round $primary-darken-2;
        border-title-color: $text;
        border-title-style: bold;
    }
    """
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (110, "-wide")]
    BINDINGS = [
        Binding("ctrl+r", "start", "Start", priority=True),
        Binding("ctrl+s", "save", "Save as", priority=True),
        Binding("escape", "back", "Back"),
        # Written on the form's border: the footer keeps room for q Quit at 80 columns.
        Binding("ctrl+pagedown", "group(1)", "Next group", key_display="^PgDn", priority=True,
                show=False),
        Binding("ctrl+pageup", "group(-1)", "Previous group", show=False, priority=True),
    ]

    def __init__(self, entry: RecipeEntry, initial: Recipe) -> None:
        """``initial``: the recipe as it would run now (``tui.catalog.as_run``)."""
        super().__init__()
        self.entry = entry
        self.initial = initial
        self.recipe: Recipe | None = initial
        self.errors: list[str] = []
        self._fit_timer: Timer | None = None
        self._saved: dict[str, Any] | None = None  # the values last saved with ctrl+s

    def compose(self) -> ComposeResult:
        yield Header()
        yield RecipeForm(self.initial)
        with Vertical(id="side"):
            with Vertical(id="fit-box"):
                yield FitView()
            yield Static("", id="status")
            yield Static("", id="field-help")
            yield DataPreview(self.app.slothlab)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Configure {safe_text(self.entry.name, multiline=False)}"
        self.query_one("#fit-box").border_title = "VRAM fit"
        self.query_one("#status").border_title = "recipe"
        self.query_one("#field-help").border_title = "field"
        self.watch(self.app, "card", lambda _: self._schedule_fit(), init=False)
        self.watch(self.app, "device", lambda _: self._schedule_fit(), init=False)
        self._show_status()
        self._schedule_fit()
        self.query_one(DataPreview).request(self.initial, now=True)
        self.call_after_refresh(self._focus_first_field)

    def _focus_first_field(self) -> None:
        inputs = self.query("RecipeForm #input")
        if inputs:
            inputs.first().focus()

    @property
    def form(self) -> RecipeForm:
        return self.query_one(RecipeForm)

    def on_descendant_focus(self, event) -> None:
        for node in event.widget.ancestors_with_self:
            if isinstance(node, FieldEditor):
                box = self.query_one("#field-help", Static)
                box.border_title = node.name_
                box.update(Text(node.describe()))
                return

    def on_recipe_form_changed(self, event: RecipeForm.Changed) -> None:
        self.recipe, self.errors = event.recipe, event.errors
        self._show_status()
        self._schedule_fit()
        self.query_one(DataPreview).request(event.recipe)

    def _show_status(self) -> None:
        status = self.query_one("#status", Static)
        status.set_class(bool(self.errors), "-invalid")
        if self.errors:
            text = Text(f"{len(self.errors)} problem(s):\n", style="bold red")
            for error in self.errors:
                text.append(f"• {safe_text(error)}\n", style="red")
            text.append("ctrl+r starts once they are fixed", style="dim")
            status.update(text)
            return
        modified = self.form.modified
        text = Text("valid ✓", style="bold green")
        if modified:
            text.append(f"\nchanged: {', '.join(modified)}", style="")
            text.append("\nstarts from a copy; ctrl+s saves it as a new recipe", style="dim")
        else:
            tiny = self.initial.tiny and not (self.entry.recipe and self.entry.recipe.tiny)
            text.append(f"\nas in {self.entry.name}{' (tiny mode)' if tiny else ''}",
                        style="dim")
        status.update(text)

    def _schedule_fit(self) -> None:
        if self._fit_timer is not None:
            self._fit_timer.stop()
        self._fit_timer = self.set_timer(0.15, self._estimate)

    def _estimate(self) -> None:
        self.run_worker(self._estimate_work, group="fit", exclusive=True)

    async def _estimate_work(self) -> None:
        vram, source = self.app.card_gib()
        view = self.query_one(FitView)
        recipe = self.recipe or self._fit_recipe()
        if recipe is None:
            bad = [name for name in FIT_FIELDS if name in self.form.invalid]
            view.update(Text(f"fix {', '.join(bad)} to see the estimate", style="dim"))
            return
        # The form's recipe is what runs (its tiny overrides already applied where tiny is on).
        fit = await asyncio.to_thread(self.app.estimate_fit, recipe, vram)
        view.show(fit, vram, source)

    def _fit_recipe(self) -> Recipe | None:
        """While another field is invalid, the estimate still shows: the form's values of the
        fields it reads (FIT_FIELDS) on the recipe as it opened; None if one of those is bad."""
        form = self.form
        if any(name in form.invalid for name in FIT_FIELDS):
            return None
        try:
            return dataclasses.replace(self.initial,
                                       **{name: form.values[name] for name in FIT_FIELDS})
        except (TypeError, ValueError):
            return None

    # -- actions -----------------------------------------------------------------------
    async def _first_invalid(self) -> None:
        invalid = self.form.invalid
        if invalid:
            editor = await self.form.show_field(invalid[0])
            editor.query_one("#input").focus()

    async def action_start(self) -> None:
        recipe, errors = self.form.validate()
        if recipe is None:
            self.notify("; ".join(errors)[:300], title="fix the recipe first", severity="error",
                        markup=False)
            await self._first_invalid()
            return
        if self.app.run_active:
            self.notify("a run is in progress: stop it first (2, then s)", severity="warning")
            return
        # Back to the list once it starts (the next visit to Recipes starts fresh); a question
        # answered "no" (a full recipe on a CPU) leaves the form as it is.
        self.app.start_configured(self.entry, recipe, modified=recipe != self.initial,
                                  before=self._close)

    def _close(self) -> None:
        if self.is_current:
            self.app.pop_screen()

    async def action_save(self) -> None:
        recipe, errors = self.form.validate()
        if recipe is None:
            self.notify("; ".join(errors)[:300], title="fix the recipe first", severity="error",
                        markup=False)
            await self._first_invalid()
            return
        values = dict(self.form.values)

        def saved() -> None:
            self._saved = values

        self.app.save_recipe(recipe, on_saved=saved)

    async def action_group(self, step: int) -> None:
        await self.form.switch_tab(step)

    @property
    def unsaved(self) -> list[str]:
        """Fields changed since the form opened (or was last saved), invalid ones included."""
        form = self.form
        baseline = self._saved or form.originals
        changed = [name for name, value in form.values.items()
                   if name not in form.field_errors and value != baseline[name]]
        return [*changed, *form.field_errors]

    def action_back(self) -> None:
        unsaved = self.unsaved
        if not unsaved:
            self.app.pop_screen()
            return

        def answer(discard: bool | str | None) -> None:
            if discard is True:
                self._close()

        shown = ", ".join(unsaved[:6]) + (f" and {len(unsaved) - 6} more" if len(unsaved) > 6
                                          else "")
        self.app.push_screen(ConfirmScreen(
            "Discard your changes?", f"Changed: {shown}. ctrl+s saves them as a new recipe.",
            yes="Discard", no="Keep editing"), answer)
