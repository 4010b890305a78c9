"""The Configure form, generated from the recipe schema (``describe_fields``), one tab per group.

The form's values live in a dict (``values``), so every field is validated whether or not its
tab has been opened; a group's editors are built the first time its tab is shown (building all
fifty at once takes a second or more on a small machine). Tab labels mark a group with changed
(•) or invalid (✗) fields.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.app import ComposeResult
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.timer import Timer
from textual.widget import AwaitMount, Widget
from textual.widgets import Static, TabbedContent, TabPane

from recipes.errors import RecipeError
from recipes.schema import Recipe, describe_fields, recipe_from_mapping
from tui.widgets.field_editor import DATA_FIELDS, FieldEditor, missing_data_file

VALIDATE_DELAY = 0.15
# Tabs over the schema's groups (recipe has three fields, so it shares a tab with model).
TABS: dict[str, tuple[str, ...]] = {
    "model": ("recipe", "model"), "lora": ("lora",), "train": ("train",),
    "logging": ("logging",), "data": ("data",), "eval": ("eval",),
}
TAB_TITLES = {"model": "recipe", "lora": "LoRA", "train": "training", "logging": "logging",
              "data": "data", "eval": "eval"}


class RecipeForm(Vertical):
    DEFAULT_CSS = """
    RecipeForm {
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        height: 1fr;
    }
    RecipeForm TabPane {
        padding: 0;
        height: 1fr;
    }
    RecipeForm .group {
        padding: 0 1;
        height: 1fr;
    }
    RecipeForm .section {
        color: $primary;
        text-style: bold;
        padding: 1 0 0 0;
    }
    """

    @dataclass
    class Changed(Message):
        """The form's values changed: ``recipe`` is None while something is invalid."""

        form: RecipeForm
        recipe: Recipe | None
        errors: list[str]

    def __init__(self, recipe: Recipe, original: Recipe | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.specs = describe_fields()
        tab_of_group = {g: tab for tab, groups in TABS.items() for g in groups}
        self.tab_of = {spec["name"]: tab_of_group.get(spec["group"], "model")
                       for spec in self.specs}
        self.values: dict[str, Any] = recipe.to_dict()
        self.originals: dict[str, Any] = (original or recipe).to_dict()
        self.field_errors: dict[str, str] = {}  # typed values that do not parse
        self.data_errors: dict[str, str] = {}  # data files that are not there (any value)
        self.recipe: Recipe | None = recipe
        self.errors: list[str] = []
        self.border_title = "recipe fields"
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        with TabbedContent(id="groups"):
            for tab in TABS:
                with TabPane(TAB_TITLES[tab], id=f"tab-{tab}"):
                    yield VerticalScroll(classes="group", id=f"group-{tab}")

    def on_mount(self) -> None:
        self.build_group(next(iter(TABS)))
        self._revalidate()  # a recipe can name a data file that is not there from the start

    # -- building groups on demand -----------------------------------------------------
    def build_group(self, tab: str) -> AwaitMount | None:
        scroll = self.query_one(f"#group-{tab}", VerticalScroll)
        if scroll.children:
            return None
        widgets: list[Widget] = []
        for group in TABS[tab]:
            if len(TABS[tab]) > 1:
                widgets.append(Static(f"── {group} ──", classes="section"))
            widgets.extend(
                FieldEditor(spec, self.values[spec["name"]], self.originals[spec["name"]])
                for spec in self.specs if spec["group"] == group)
        return scroll.mount_all(widgets)

    async def switch_tab(self, step: int) -> None:
        """Show the next (or previous) group and put the cursor in its first field."""
        tabs = self.query_one(TabbedContent)
        names = list(TABS)
        current = (tabs.active or "tab-model")[len("tab-"):]
        tab = names[(names.index(current) + step) % len(names)]
        # Build first, then switch and focus: keys typed meanwhile stay in the visible field.
        mounting = self.build_group(tab)
        if mounting is not None:
            await mounting
        tabs.active = f"tab-{tab}"
        inputs = self.query_one(f"#group-{tab}").query("#input")
        if inputs:
            inputs.first().focus()

    def on_tabbed_content_tab_activated(self, event: TabbedContent.TabActivated) -> None:
        event.stop()
        pane_id = event.pane.id or ""
        if pane_id.startswith("tab-"):
            self.build_group(pane_id[len("tab-"):])

    async def show_field(self, name: str) -> FieldEditor:
        """Switch to the field's group (building it) and return its editor."""
        tab = self.tab_of[name]
        self.query_one(TabbedContent).active = f"tab-{tab}"
        mounting = self.build_group(tab)
        if mounting is not None:
            await mounting
        editor = self.query_one(f"#field-{name}", FieldEditor)
        editor.scroll_visible(animate=False)
        return editor

    # -- values and validation ---------------------------------------------------------
    @property
    def editors(self) -> list[FieldEditor]:
        return list(self.query(FieldEditor))

    def on_field_editor_changed(self, event: FieldEditor.Changed) -> None:
        # The field shows its own error at once; the whole recipe (cross-field rules, the fit
        # estimate) is checked once typing pauses.
        event.stop()
        editor = event.editor
        if editor.error:
            self.field_errors[editor.name_] = editor.error
        else:
            self.field_errors.pop(editor.name_, None)
            self.values[editor.name_] = editor.value
        self._label_tabs()
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(VALIDATE_DELAY, self._revalidate)

    def _revalidate(self) -> None:
        self._timer = None
        recipe, errors = self.validate()
        self._label_tabs()
        self.post_message(self.Changed(self, recipe, errors))

    def validate(self) -> tuple[Recipe | None, list[str]]:
        self.data_errors = {name: problem for name in DATA_FIELDS
                            if name not in self.field_errors
                            and (problem := missing_data_file(self.values.get(name)))}
        errors = [f"{name}: {error}"
                  for name, error in {**self.field_errors, **self.data_errors}.items()]
        recipe = None
        if not errors:
            try:
                recipe = recipe_from_mapping(self.values, source="form")
            except RecipeError as exc:
                errors.append(exc.what + (f" → {exc.fix}" if exc.fix else ""))
        self.recipe, self.errors = recipe, errors
        return recipe, errors

    @property
    def modified(self) -> list[str]:
        return [name for name, value in self.values.items()
                if name not in self.field_errors and value != self.originals[name]]

    @property
    def invalid(self) -> list[str]:
        return [*self.field_errors, *self.data_errors]

    def _label_tabs(self) -> None:
        tabs = self.query_one(TabbedContent)
        modified, invalid = set(self.modified), set(self.invalid)
        for tab_id in TABS:
            names = {n for n, t in self.tab_of.items() if t == tab_id}
            mark = " ✗" if names & invalid else " •" if names & modified else ""
            tab = tabs.get_tab(f"tab-{tab_id}")
            label = TAB_TITLES[tab_id] + mark
            if str(tab.label) != label:
                tab.label = label
