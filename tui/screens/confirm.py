"""A yes / no question in a modal (Stop the run? Quit?), with an optional third answer.

The result is True (yes), False (no, Esc) or ``OTHER`` (the third answer, when offered: e.g.
"Tiny mode instead" when a full recipe would train on a CPU, key t; "Leave it running", key l).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Static

OTHER = "other"


class ConfirmScreen(ModalScreen[bool | str]):
    DEFAULT_CSS = """
    ConfirmScreen {
        align: center middle;
    }
    ConfirmScreen > Vertical {
        width: 60;
        max-width: 90%;
        height: auto;
        border: thick $warning;
        background: $panel;
        padding: 1 2;
    }
    ConfirmScreen.-three > Vertical {
        width: 78;
    }
    ConfirmScreen #question {
        text-style: bold;
    }
    ConfirmScreen #detail {
        color: $text-muted;
        padding: 1 0;
    }
    ConfirmScreen Horizontal {
        height: auto;
        align-horizontal: right;
    }
    ConfirmScreen Button {
        margin: 0 0 0 2;
    }
    """
    BINDINGS = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(self, question: str, detail: str = "", yes: str = "Yes", no: str = "No",
                 other: str = "", other_key: str = "t", focus: str = "") -> None:
        """``other``: the label of a third answer (key ``other_key``), focused when offered;
        ``focus``: the button focused first ("yes", "no", "other")."""
        super().__init__(classes="-three" if other else "")
        self.question, self.detail, self.yes, self.no = question, detail, yes, no
        self.other, self.other_key = other, other_key
        self.first_focus = focus or ("other" if other else "no")

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(self.question, id="question")
            if self.detail:
                yield Static(self.detail, id="detail")
            with Horizontal():
                yield Button(f"{self.no} (n)", id="no")
                if self.other:
                    yield Button(f"{self.other} ({self.other_key})", id="other",
                                 variant="primary")
                yield Button(f"{self.yes} (y)", id="yes", variant="warning")

    def on_mount(self) -> None:
        self.query_one(f"#{self.first_focus}", Button).focus()

    def on_key(self, event) -> None:
        if self.other and event.key == self.other_key:
            event.stop()
            self.dismiss(OTHER)

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(OTHER if event.button.id == "other" else event.button.id == "yes")

    def action_answer(self, answer: bool) -> None:
        self.dismiss(answer)

