"""The Configure form, generated from the recipe schema (``describe_fields``), one tab per group.

The form's values live in a dict (``values``), so every field is validated whether or not its
tab has been opened; a group's editors are built the first time its tab is shown (building all
fifty at once takes a second or more on a small machine). Tab labels mark a group with changed
(•) or invalid (✗) fields.

What the form shows is what runs:

* Switching ``tiny`` on applies the recipe's ``tiny_overrides`` to the fields themselves, where
  you see them (marked changed) and can edit them; switching it off gives the fields the
  overrides set their values back (those you have not edited since). While ``tiny`` is on the
  recipe is validated with ``tiny_overrides`` empty, so nothing is applied out of sight (a run,
  like ``dump_recipe``, then reads them as already applied).
* Only the data fields the run reads are checked for a missing file: ``sample_dataset`` /
  ``sample_extra_datasets`` in tiny mode (or ``dataset`` / ``extra_datasets`` where a sample is
  not set, as ``recipes.schema.data_source`` and ``recipes.schema.extra_sources`` pick them),
  ``dataset`` / ``extra_datasets`` otherwise. A missing file in a field the run does not read
  is a warning on that field, not an error.
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
from recipes.schema import Recipe, coerce, data_fields, describe_fields, recipe_from_mapping
from tui.validation import data_problems, target_modules_problem
from tui.widgets.field_editor import DATA_FIELDS, FieldEditor, short_error

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
        self.data_errors: dict[str, str] = {}  # data files the run reads that are not there
        self.imposed: dict[str, str] = {}  # errors the form finds (a tiny override that fails)
        # The tiny overrides the form applied to the fields: field -> value applied, and the
        # value it had before (given back when tiny goes off, if not edited since).
        self._applied: dict[str, Any] = {}
        self._before: dict[str, Any] = {}
        self.recipe: Recipe | None = recipe
        self.errors: list[str] = []
        self.border_title = "recipe fields"
        self.border_subtitle = "^PgDn / ^PgUp: next / previous group"
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
                FieldEditor(spec, self.values[spec["name"]], self.originals[spec["name"]],
                            unread=self.unread_note(spec["name"]),
                            imposed=self.imposed.get(spec["name"], ""))
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
        if editor.parse_error:
            self.field_errors[editor.name_] = editor.parse_error
        else:
            self.field_errors.pop(editor.name_, None)
            self.values[editor.name_] = editor.value
            if editor.name_ in ("tiny", "tiny_overrides"):
                self._sync_tiny_overrides()
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
        """Every problem at once (``tui.validation``), each on its field: ctrl+r's check."""
        self.data_errors = {name: problem for name, problem in data_problems(self.values).items()
                            if name not in self.field_errors}
        for editor in self.query(FieldEditor):
            if editor.name_ in DATA_FIELDS:
                editor.set_unread(self.unread_note(editor.name_))
        if "model" not in self.field_errors and "target_modules" not in self.field_errors:
            self._impose("target_modules", target_modules_problem(self.values))
        errors = [f"{name}: {error}" for name, error in
                  {**self.field_errors, **self.imposed, **self.data_errors}.items()]
        recipe = None
        if not errors:
            values = self.values
            if values.get("tiny"):  # applied to the fields already (or edited since): not again
                values = {**values, "tiny_overrides": {}}
            try:
                recipe = recipe_from_mapping(values, source="form")
            except RecipeError as exc:
                errors.append(exc.what + (f" → {exc.fix}" if exc.fix else ""))
        self.recipe, self.errors = recipe, errors
        return recipe, errors

    # -- which data fields the run reads -----------------------------------------------
    def data_fields_read(self) -> tuple[str, str]:
        """The data fields a run of the form's values reads (the rule the run itself uses)."""
        return data_fields(bool(self.values.get("tiny")), self.values.get("sample_dataset"),
                           self.values.get("sample_extra_datasets"))

    def unread_note(self, name: str) -> str:
        """Why the run does not read data field ``name`` now; "" when it does (or not a data
        field)."""
        if name not in DATA_FIELDS or name in self.data_fields_read():
            return ""
        if name.startswith("sample_"):
            return "only tiny mode reads it"
        return f"tiny mode reads sample_{name}"

    # -- tiny overrides, applied where you see them ------------------------------------
    def _sync_tiny_overrides(self) -> None:
        """While ``tiny`` is on, the fields named in ``tiny_overrides`` show the overridden
        values; when it goes off (or an override is removed) they get their values back, unless
        edited since. An override that does not load blocks the recipe, on ``tiny_overrides``."""
        wanted: dict[str, Any] = {}
        problems: list[str] = []
        if self.values.get("tiny"):
            for key, raw in (self.values.get("tiny_overrides") or {}).items():
                try:
                    wanted[key] = coerce(key, raw, where="tiny_overrides")
                except RecipeError as exc:
                    problems.append(f"{key}: {short_error(exc)}")
        self._impose("tiny_overrides",
                     "; ".join(problems) + " (tiny mode applies these)" if problems else "")
        if problems:
            return  # nothing half-applied: fix tiny_overrides or switch tiny off
        for key in [k for k in self._applied if k not in wanted]:
            if self.values.get(key) == self._applied[key] and key not in self.field_errors:
                self._set_field(key, self._before[key])
            del self._applied[key], self._before[key]
        for key, value in wanted.items():
            if key in self._applied and self._applied[key] == value:
                continue  # applied already (and perhaps edited since: the edit stays)
            self._before.setdefault(key, self.values.get(key))
            self._applied[key] = value
            self._set_field(key, value)

    def _impose(self, name: str, error: str) -> None:
        if error:
            self.imposed[name] = error
        else:
            self.imposed.pop(name, None)
        for editor in self.query(f"#field-{name}").results(FieldEditor):
            editor.impose(error)

    def _set_field(self, name: str, value: Any) -> None:
        """Give a field a value from the form (not typed): its editor shows it, if built."""
        self.values[name] = value
        self.field_errors.pop(name, None)
        for editor in self.query(f"#field-{name}").results(FieldEditor):
            editor.set_value(value)

    @property
    def modified(self) -> list[str]:
        return [name for name, value in self.values.items()
                if name not in self.field_errors and value != self.originals[name]]

    @property
    def invalid(self) -> list[str]:
        return list(dict.fromkeys([*self.field_errors, *self.imposed, *self.data_errors]))

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
