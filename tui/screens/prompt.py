"""Ask for one line of text in a modal (a run's display name, a note): ⏎ keeps, Esc cancels.

The result is the text (stripped; "" clears) or None when cancelled.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static


class PromptScreen(ModalScreen[str | None]):
    DEFAULT_CSS = """
    PromptScreen {
        align: center middle;
    }
    PromptScreen > Vertical {
        width: 72;
        max-width: 95%;
        height: auto;
        border: thick $primary;
        background: $panel;
        padding: 1 2;
    }
    PromptScreen #hint {
        color: $text-muted;
        height: auto;
    }
    PromptScreen Horizontal {
        height: auto;
        align-horizontal: right;
        padding: 1 0 0 0;
    }
    PromptScreen Button {
        margin: 0 0 0 2;
    }
    """
    BINDINGS = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, question: str, value: str = "", hint: str = "") -> None:
        super().__init__()
        self.question, self.value, self.hint = question, value, hint

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question)
            yield Input(self.value, id="text")
            if self.hint:
                yield Static(self.hint, id="hint")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Keep", id="keep", variant="primary")

    def on_input_submitted(self) -> None:
        self.dismiss(self.query_one("#text", Input).value.strip())

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "keep":
            self.dismiss(self.query_one("#text", Input).value.strip())
        else:
            self.dismiss(None)

    def action_cancel(self) -> None:
        self.dismiss(None)
