"""Save the edited recipe as a new YAML file: asks for the path, warns before overwriting."""

from __future__ import annotations

from pathlib import Path

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from tui.format import short_path


class SaveRecipeScreen(ModalScreen[Path | None]):
    DEFAULT_CSS = """
    SaveRecipeScreen {
        align: center middle;
    }
    SaveRecipeScreen > Vertical {
        width: 72;
        max-width: 95%;
        height: auto;
        border: thick $primary;
        background: $panel;
        padding: 1 2;
    }
    SaveRecipeScreen #warning {
        color: $warning;
        height: auto;
    }
    SaveRecipeScreen Horizontal {
        height: auto;
        align-horizontal: right;
        padding: 1 0 0 0;
    }
    SaveRecipeScreen Button {
        margin: 0 0 0 2;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, default: Path) -> None:
        super().__init__()
        self.default = default

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static("Save recipe as (a .yaml path; the Recipes list shows this folder):")
            yield Input(short_path(self.default), id="path")
            yield Static("", id="warning")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Save", id="save", variant="primary")

    def on_mount(self) -> None:
        self._check(self.query_one("#path", Input).value)

    def on_input_changed(self, event: Input.Changed) -> None:
        self._check(event.value)

    def _path(self) -> Path | None:
        text = self.query_one("#path", Input).value.strip()
        if not text:
            return None
        path = Path(text).expanduser()
        return path if path.suffix in (".yaml", ".yml") else path.with_suffix(".yaml")

    def _check(self, _: str) -> None:
        path = self._path()
        warning = ""
        if path is None:
            warning = "give a file name"
        elif path.exists():
            warning = f"{short_path(path)} exists: Save overwrites it"
        self.query_one("#warning", Static).update(warning)

    def on_input_submitted(self) -> None:
        self._save()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "save":
            self._save()
        else:
            self.dismiss(None)

    def _save(self) -> None:
        path = self._path()
        if path is not None:
            self.dismiss(path)

    def action_cancel(self) -> None:
        self.dismiss(None)
