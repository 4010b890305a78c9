"""Recipes: every recipe with its fit badge, the device panel, tiny mode and card size."""

from __future__ import annotations

import asyncio

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.screen import Screen
from textual.widgets import Checkbox, DataTable, Footer, Header, Label, Select

from tui.catalog import RecipeEntry, as_run
from tui.fit import Fit
from tui.widgets.device_panel import DevicePanel
from tui.widgets.fit_view import FitView
from tui.widgets.recipe_detail import RecipeDetail
from tui.widgets.recipe_table import RecipeTable


def tiny_label(on: bool) -> str:
    return f"tiny mode {'on' if on else 'off'} (t)"


class RecipesScreen(Screen):
    TITLE = "slothlab"
    SUB_TITLE = "Recipes"
    AUTO_FOCUS = "RecipeTable"
    DEFAULT_CSS = """
    RecipesScreen #controls {
        height: 1;
        padding: 0 1;
    }
    RecipesScreen #controls Label {
        padding: 0 1 0 0;
    }
    RecipesScreen #controls Select {
        width: 30;
    }
    RecipesScreen #controls .gap {
        width: 3;
    }
    RecipesScreen RecipeTable {
        height: auto;
        max-height: 50%;
    }
    RecipesScreen #bottom {
        height: 1fr;
    }
    RecipesScreen #info {
        width: 1fr;
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text;
        border-title-style: bold;
    }
    RecipesScreen DevicePanel {
        width: 40%;
        max-width: 56;
    }
    """
    BINDINGS = [
        Binding("s", "start", "Start"),
        # t and c are written on the controls they work ("tiny mode off (t)", "card (c)"): out
        # of the footer, which keeps room for q Quit at 80 columns.
        Binding("t", "toggle_tiny", "Tiny", show=False),
        Binding("c", "focus_card", "Card", show=False),
        Binding("d", "detect_device", "Re-detect", show=False),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.fits: dict[str, Fit] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="controls"):
            yield Checkbox(tiny_label(self.app.tiny), value=self.app.tiny, compact=True,
                           id="tiny")
            yield Label("", classes="gap")
            yield Label("card (c)")
            yield Select(self.app.card_options(), value=self.app.card, allow_blank=False,
                         compact=True, id="card")
        yield RecipeTable()
        with Horizontal(id="bottom"):
            with VerticalScroll(id="info"):
                yield RecipeDetail()
                yield FitView()
            yield DevicePanel(self.app.device)
        yield Footer()

    def on_mount(self) -> None:
        self.watch(self.app, "device", self._device_changed, init=False)
        self.watch(self.app, "tiny", self._tiny_changed, init=False)
        self.watch(self.app, "card", self._card_changed, init=False)
        self.watch(self.app, "catalog_version", lambda _: self.refresh_table(), init=False)
        self.refresh_table()

    # -- data --------------------------------------------------------------------------
    @property
    def table(self) -> RecipeTable:
        return self.query_one(RecipeTable)

    def refresh_table(self) -> None:
        self._show_table()
        self.run_worker(self._estimate_all, group="fits", exclusive=True)  # a callable: a
        # worker cancelled before it starts leaves no un-awaited coroutine behind

    def _show_table(self) -> None:
        _, source = self.app.card_gib()
        self.table.show(self.app.catalog, self.fits, self.app.tiny, source)
        self._show_current()

    async def _estimate_all(self) -> None:
        app = self.app
        vram, _ = app.card_gib()
        tiny = app.tiny
        jobs = [(str(e.path), e.recipe) for e in app.catalog
                if e.recipe is not None and not e.error_for(tiny)]

        def work() -> dict[str, Fit]:
            return {key: app.estimate_fit(as_run(recipe, tiny), vram) for key, recipe in jobs}

        self.fits = await asyncio.to_thread(work)
        self._show_table()

    def _show_current(self) -> None:
        entry = self.table.current
        info = self.query_one("#info")
        info.border_title = entry.name if entry else "no recipe"
        self.query_one(RecipeDetail).show(entry, self.app.tiny)
        vram, source = self.app.card_gib()
        fit_view = self.query_one(FitView)
        fit_view.display = not (entry and entry.error_for(self.app.tiny))  # no fit to show
        fit = self.fits.get(str(entry.path)) if entry else None
        fit_view.show(fit if entry and entry.recipe else None, vram, source)

    @property
    def current(self) -> RecipeEntry | None:
        return self.table.current

    # -- events ------------------------------------------------------------------------
    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        self._show_current()

    def on_data_table_row_selected(self, event: DataTable.RowSelected) -> None:
        self.action_configure()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        if event.checkbox.id == "tiny":
            self.app.tiny = event.value

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "card" and event.value != Select.BLANK:
            if self.app.card != str(event.value):
                self.app.card = str(event.value)
                self.table.focus()

    def _device_changed(self, _) -> None:
        self.query_one(DevicePanel).show(self.app.device)
        select = self.query_one("#card", Select)
        with select.prevent(Select.Changed):  # a new label for "auto", not a new choice
            select.set_options(self.app.card_options())
            select.value = self.app.card
            select.mutate_reactive(Select.value)  # redraw the label even when value is the same
        self.refresh_table()

    def _tiny_changed(self, tiny: bool) -> None:
        checkbox = self.query_one("#tiny", Checkbox)
        checkbox.value = tiny
        checkbox.label = tiny_label(tiny)
        self.refresh_table()

    def _card_changed(self, card: str) -> None:
        select = self.query_one("#card", Select)
        if select.value != card:
            select.value = card
        self.refresh_table()

    # -- actions -----------------------------------------------------------------------
    def action_configure(self) -> None:
        entry = self.current
        if entry is not None:
            self.app.configure(entry)

    def action_start(self) -> None:
        entry = self.current
        if entry is not None:
            self.app.start_recipe(entry)

    def action_toggle_tiny(self) -> None:
        self.app.tiny = not self.app.tiny

    def action_focus_card(self) -> None:
        select = self.query_one("#card", Select)
        select.focus()
        select.expanded = True

    def action_detect_device(self) -> None:
        self.app.detect_device()

