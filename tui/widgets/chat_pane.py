"""One side of the Chat screen: the conversation as one model (base or fine-tuned) answered it."""

from __future__ import annotations

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Static

from recipes.safe_text import safe_text


class ChatPane(VerticalScroll):
    DEFAULT_CSS = """
    ChatPane {
        width: 1fr;
        height: 1fr;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        padding: 0 1;
    }
    ChatPane.-answering {
        border: round $accent;
    }
    ChatPane > Static {
        height: auto;
    }
    ChatPane > .chat-user {
        margin-top: 1;
        text-style: bold;
    }
    ChatPane > .chat-note, ChatPane > .chat-rule {
        color: $text-muted;
    }
    """

    def __init__(self, mode: str, title: str, **kwargs) -> None:
        super().__init__(**kwargs)
        self.mode = mode
        self.border_title = title
        self.answer = ""  # the answer being streamed
        self._answer_widget: Static | None = None

    def _add(self, content: Text, classes: str) -> Static:
        widget = Static(content, classes=classes)
        self.mount(widget)
        self.scroll_end(animate=False)
        return widget

    def rule(self, text: str) -> None:
        self._add(Text(f"── {text} ──"), "chat-rule")

    def add_user(self, text: str) -> None:
        self._add(Text("you › ", style="bold") + Text(safe_text(text)), "chat-user")

    def note(self, text: str) -> None:
        self._add(Text(text), "chat-note")

    def begin(self) -> None:
        self.answer = ""
        self.add_class("-answering")
        self._answer_widget = self._add(Text("…", style="dim"), "chat-answer")

    def append(self, text: str) -> None:
        if self._answer_widget is None:
            self.begin()
        self.answer += text
        self._answer_widget.update(Text(safe_text(self.answer)))  # type: ignore[union-attr]
        self.scroll_end(animate=False)

    def finish(self, text: str, notes: list[str]) -> None:
        if self._answer_widget is None:
            self.begin()
        self.answer = text
        self._answer_widget.update(Text(safe_text(text)) if text else  # type: ignore[union-attr]
                                   Text("(empty answer)", style="dim"))
        self._answer_widget = None
        self.remove_class("-answering")
        for line in notes:
            self.note(line)

    def clear(self) -> None:
        self.remove_children()
        self.answer = ""
        self._answer_widget = None
        self.remove_class("-answering")
