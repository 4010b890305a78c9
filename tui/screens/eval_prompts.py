"""Pick one of the run's eval prompts (the Chat screen asks it exactly as the eval did)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import OptionList, Static
from textual.widgets.option_list import Option

from recipes.safe_text import safe_text


def prompt_line(prompt: dict[str, Any]) -> Text:
    text = Text(f"{prompt['index']:>3}  ", style="dim")
    if prompt.get("task"):
        text.append(f"[{prompt['task']}{'/' + prompt['lang'] if prompt.get('lang') else ''}] ",
                    style="cyan")
    text.append(safe_text(" ".join(str(prompt["question"]).split()))[:160])
    tuned = (prompt.get("eval") or {}).get("tuned")
    if tuned is not None:
        text.append(f"   → {safe_text(' '.join(tuned.split()))[:60]}", style="green")
    return text


class EvalPromptsScreen(ModalScreen[int | None]):
    DEFAULT_CSS = """
    EvalPromptsScreen {
        align: center middle;
    }
    EvalPromptsScreen > Vertical {
        width: 90%;
        height: 80%;
        border: round $accent;
        background: $surface;
        padding: 0 1;
    }
    EvalPromptsScreen OptionList {
        height: 1fr;
        border: none;
    }
    EvalPromptsScreen #eval-help {
        color: $text-muted;
        height: auto;
    }
    """
    BINDINGS = [Binding("escape", "dismiss_none", "Cancel")]

    def __init__(self, prompts: list[dict[str, Any]], note: str = "") -> None:
        super().__init__()
        self.prompts = prompts
        self.note = note

    def compose(self) -> ComposeResult:
        with Vertical() as box:
            box.border_title = f"eval prompts ({len(self.prompts)})"
            help_text = ("⏎ asks it as the eval did (a new conversation from it); → the eval's "
                         "fine-tuned answer")
            yield Static(help_text + (f"\n{self.note}" if self.note else ""), id="eval-help")
            yield OptionList(*(Option(prompt_line(p), id=str(p["index"])) for p in self.prompts))

    def on_option_list_option_selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(int(event.option.id or 0))

    def action_dismiss_none(self) -> None:
        self.dismiss(None)
