"""One recipe field in the form: its input, its help and bounds, and its error as you type.

The input kind follows the schema: a switch for booleans, a select for choices, a text input
for everything else. Values are checked with ``recipes.schema.coerce``, the function the YAML
loader and ``--set`` use, so the form accepts exactly what a recipe file accepts; the data fields
are also looked up as the training process will (``recipes.data.sources.resolve_path``), so a local file
that is not there is flagged while you type, not when the run starts: as an error in a field the
run reads, as a warning in one it does not (the form says which: ``set_unread``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import yaml
from textual.app import ComposeResult
from textual.message import Message
from textual.widget import Widget
from textual.widgets import Checkbox, Input, Label, Select, Static

from recipes.errors import RecipeError
from recipes.schema import coerce

# Fields naming a hub dataset or a local data file (a list field names several).
DATA_FIELDS = ("dataset", "sample_dataset", "extra_datasets", "sample_extra_datasets")


def bounds(spec: dict[str, Any]) -> str:
    """The allowed range in words: ">= 1 and <= 1024", "> 0 and <= 1"."""
    if spec.get("choices"):
        return ""
    lo, hi = spec.get("min"), spec.get("max")
    parts = []
    if lo is not None:
        parts.append(f"{'>' if spec.get('min_exclusive') else '>='} {lo:g}")
    if hi is not None:
        parts.append(f"<= {hi:g}")
    return " and ".join(parts)


def interval(spec: dict[str, Any]) -> str:
    """The allowed range as an interval, short enough for the form: "[1, 1024]", "(0, 1]"."""
    if spec.get("choices"):
        return ""
    lo, hi = spec.get("min"), spec.get("max")
    if lo is None and hi is None:
        return ""
    left = "(" if spec.get("min_exclusive") or lo is None else "["
    return f"{left}{'-∞' if lo is None else _short(lo)}, {'∞' if hi is None else _short(hi)}]"


def _short(value: float) -> str:
    return f"{value:g}" if abs(value) < 1e6 else f"{value:.3g}"


def to_text(value: Any) -> str:
    if isinstance(value, list):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip() if value else ""
    if isinstance(value, float):
        return f"{value:g}"
    return "" if value is None else str(value)


def on_off(value: Any) -> str:
    return "on" if value else "off"


def missing_data_file(value: Any) -> str:
    """Why a data field's value will not load: a local file (a data suffix, or a path starting
    with . / ~) that is not there, found the way the run looks it up; "" when it is fine.
    Hub ids (owner/name) are not checked here: the run checks the hub."""
    from recipes.data.sources import resolve_path, source_exists
    from recipes.host import PROJECT_ROOT

    for name in value if isinstance(value, list) else [value]:
        if not isinstance(name, str) or not name.strip():
            continue
        path = resolve_path(name, base_dirs=[PROJECT_ROOT])
        if path is None:
            continue
        if not source_exists(path):  # a file, a folder of files or a glob pattern
            return f"no such file: {name} (looked in the working folder and the project)"
    return ""


def short_error(exc: RecipeError) -> str:
    what = exc.what
    if what.startswith("field '") and "': " in what:
        what = what.split(": ", 1)[1]
    return what


class FieldEditor(Widget):
    DEFAULT_CSS = """
    FieldEditor {
        height: auto;
        layout: grid;
        grid-size: 3;
        grid-columns: 29 1fr 15;
        grid-rows: 1;
    }

    FieldEditor .name {
        width: 1fr;
        padding: 0 1 0 0;
        color: $text;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FieldEditor.-modified .name {
        color: $accent;
        text-style: bold;
    }
    FieldEditor Input, FieldEditor Select {
        width: 1fr;
    }
    FieldEditor Checkbox {
        width: 1fr;
    }
    FieldEditor .-span {
        column-span: 2;
    }
    FieldEditor .bounds {
        width: auto;
        min-width: 0;
        max-width: 20;
        color: $text-muted;
        padding: 0 0 0 1;
    }
    FieldEditor .help {
        column-span: 3;
        color: $text-muted;
        padding: 0 0 0 29;
        text-wrap: nowrap;
        text-overflow: ellipsis;
    }
    FieldEditor:focus-within .help {
        color: $text;
        text-wrap: wrap;
    }
    FieldEditor.-invalid .help {
        color: $error;
        text-style: bold;
    }
    FieldEditor.-invalid .name {
        color: $error;
    }
    FieldEditor.-unread .help {
        color: $warning;
    }
    """

    @dataclass
    class Changed(Message):
        editor: FieldEditor
        name: str

        @property
        def control(self) -> FieldEditor:
            return self.editor

    def __init__(self, spec: dict[str, Any], value: Any, original: Any, *, unread: str = "",
                 imposed: str = "") -> None:
        """``unread`` (data fields): why the run does not read this field now, "" when it does;
        ``imposed``: an error the form finds in this field (see ``impose``)."""
        super().__init__(id=f"field-{spec['name']}")
        self.spec = spec
        self.name_ = spec["name"]
        self.original = original
        self.value: Any = value
        self.parse_error: str = ""  # the typed value does not parse
        self.problem: str = ""  # a data file that is not there
        self.unread = unread
        self.imposed = imposed
        self._initial = value

    @property
    def error(self) -> str:
        """What stops the run in this field: a value that does not parse, an error the form
        imposed, or a missing data file the run would read (one it does not read only warns)."""
        return self.parse_error or self.imposed or ("" if self.unread else self.problem)

    def compose(self) -> ComposeResult:
        spec = self.spec
        yield Label(self.name_, classes="name")
        limits = interval(spec)
        span = "" if limits else "-span"  # no bounds: the input takes their column too
        if spec["type"] == "true or false":
            yield Checkbox(on_off(self._initial), value=bool(self._initial), compact=True,
                           id="input", classes=span)
        elif spec.get("choices"):
            yield Select([(c, c) for c in spec["choices"]], value=self._initial,
                         allow_blank=False, compact=True, id="input", classes=span)
        else:
            yield Input(to_text(self._initial), compact=True, id="input", classes=span,
                        placeholder=self._placeholder())
        if limits:
            yield Label(limits, classes="bounds", markup=False)
        yield Static(spec["help"], classes="help", markup=False)

    def _placeholder(self) -> str:
        if self.spec["type"] == "a mapping of strings":
            return "{key: value}"
        if self.spec["type"] == "a list of strings":
            return "comma-separated"
        return ""

    def on_mount(self) -> None:
        self._last_raw = self._raw()
        if self.name_ in DATA_FIELDS:
            self.validate_now()  # show a missing file at once (the form counts it already)
        elif self.imposed:
            self._show_state()
        self._mark_modified()

    def _raw(self) -> Any:
        widget = self.query_one("#input")
        if isinstance(widget, Checkbox):
            return widget.value
        if isinstance(widget, Select):
            return widget.value
        text = widget.value  # type: ignore[attr-defined]
        if self.spec["type"] == "a mapping of strings":
            if not text.strip():
                return {}
            try:
                return yaml.safe_load(text)
            except yaml.YAMLError:
                return text
        return text

    def validate_now(self) -> None:
        try:
            self.value = coerce(self.name_, self._raw(), where="form")
            self.parse_error = ""
            self.problem = missing_data_file(self.value) if self.name_ in DATA_FIELDS else ""
        except RecipeError as exc:
            self.parse_error, self.problem = short_error(exc), ""
        self._show_state()

    def set_unread(self, unread: str) -> None:
        """The form says whether the run reads this data field now (``tiny`` picks the sample)."""
        if unread != self.unread:
            self.unread = unread
            if self.is_mounted:
                self._show_state()

    def impose(self, error: str) -> None:
        """An error the form finds in this field's value (e.g. a tiny override that does not
        load); "" clears it."""
        if error != self.imposed:
            self.imposed = error
            if self.is_mounted:
                self._show_state()

    def _show_state(self) -> None:
        error = self.error
        warning = self.problem if self.unread and not error else ""
        self.set_class(bool(error), "-invalid")
        self.set_class(bool(warning), "-unread")
        help_text = (f"✗ {error}" if error
                     else f"! {warning} (not read now: {self.unread})" if warning
                     else self.spec["help"])
        self.query_one(".help", Static).update(help_text)
        self._mark_modified()

    def describe(self) -> str:
        """Everything about this field, for the side panel."""
        spec = self.spec
        lines = [spec["help"], "", f"type     {spec['type']}"]
        if spec.get("choices"):
            lines.append(f"choices  {', '.join(spec['choices'])}")
        if bounds(spec):
            lines.append(f"range    {bounds(spec)}")
        lines.append(f"default  {to_text(spec['default']) or '(empty)'}")
        lines.append(f"recipe   {to_text(self.original) or '(empty)'}")
        lines.append(f"--set    {self.name_}=…")
        return "\n".join(lines)

    def _mark_modified(self) -> None:
        self.set_class(not self.error and self.value != self.original, "-modified")

    def _changed(self) -> None:
        raw = self._raw()
        if raw == getattr(self, "_last_raw", object()):
            return  # the initial value arriving, or no real change
        self._last_raw = raw
        self.validate_now()
        self.post_message(self.Changed(self, self.name_))

    def on_input_changed(self, event: Input.Changed) -> None:
        event.stop()
        self._changed()

    def on_checkbox_changed(self, event: Checkbox.Changed) -> None:
        event.stop()
        event.checkbox.label = on_off(event.value)
        self._changed()

    def on_select_changed(self, event: Select.Changed) -> None:
        event.stop()
        self._changed()

    def set_value(self, value: Any) -> None:
        widget = self.query_one("#input")
        if isinstance(widget, (Checkbox, Select)):
            widget.value = value
        else:
            widget.value = to_text(value)  # type: ignore[attr-defined]
