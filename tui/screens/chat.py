"""Chat: talk to a run's fine-tuned model with its base beside it, answers streamed.

Opened from Results and History (t). The model runs in a `slothlab chat RUN --json`
subprocess (tui/chat_process.py): this process never imports torch, and a crash or out of
memory there shows an error panel here, with F5 to start it again. Two panes show the same
conversation as each model answered it (base | fine-tuned); ctrl+b switches who answers (both,
fine-tuned, base), F2 lists the run's eval prompts and asks one exactly as the eval did,
messages starting with / are chat commands (/system TEXT, /set temperature=0.7, /reset ...).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal
from textual.message import Message
from textual.screen import Screen
from textual.widgets import Footer, Header, Input, Static

from tui.chat_process import ChatProcess
from tui.runner import SLOTHLAB
from tui.widgets.chat_pane import ChatPane
from tui.widgets.error_panel import ErrorPanel

NEXT_MODE = {"both": "tuned", "tuned": "base", "base": "both"}
MODE_LABEL = {"both": "both answer", "tuned": "fine-tuned answers", "base": "base answers"}


def answer_notes(done: dict[str, Any], max_new_tokens: int) -> list[str]:
    notes = []
    if done.get("finish") == "max_new_tokens":
        notes.append(f"(cut at max_new_tokens={max_new_tokens})")
    elif done.get("finish") == "stopped":
        notes.append("(stopped)")
    elif done.get("finish") == "label":
        notes.append("(the likeliest label, as the eval scores this task)")
    eval_answer = done.get("eval_answer")
    if eval_answer is not None:
        notes.append("= the eval's answer" if eval_answer == done.get("text")
                     else f"the eval answered: {eval_answer}")
    return notes


class ChatScreen(Screen):
    closes_with_mode_key = True  # a view on top of a mode (SlothlabApp.action_mode)
    AUTO_FOCUS = "#prompt"
    DEFAULT_CSS = """
    ChatScreen #chat-status {
        height: auto;
        padding: 0 1;
        background: $boost;
    }
    ChatScreen #panes {
        height: 1fr;
    }
    ChatScreen #prompt {
        margin: 0 0;
    }
    """
    BINDINGS = [
        Binding("escape", "back", "Back / stop answer"),
        Binding("f2,ctrl+o", "eval_prompts", "Eval prompts"),
        Binding("ctrl+b", "cycle_mode", "Who answers"),
        Binding("ctrl+r", "reset", "Reset"),
        Binding("f5", "restart", "Restart chat"),
    ]

    @dataclass
    class Response(Message):
        """One message from the chat process (or its exit)."""

        message: dict[str, Any]

    def __init__(self, run_dir: Path, *, slothlab: tuple[str, ...] = SLOTHLAB,
                 extra_args: list[str] | None = None) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.slothlab = slothlab
        self.extra_args = list(extra_args or [])
        self.process: ChatProcess | None = None
        self.ready: dict[str, Any] = {}
        self.state: dict[str, Any] = {}
        self.answering: list[str] = []  # modes still to finish this turn
        self.failed = False

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("", id="chat-status")
        yield ErrorPanel()
        with Horizontal(id="panes"):
            yield ChatPane("base", "base (adapter off)", id="pane-base")
            yield ChatPane("tuned", "fine-tuned", id="pane-tuned")
        yield Input(placeholder="loading the model in its own process…", id="prompt",
                    disabled=True)
        yield Footer()

    def on_mount(self) -> None:
        self.sub_title = f"Chat · {self.run_dir.name}"
        self.start()

    # -- the process -------------------------------------------------------------------------
    def start(self) -> None:
        self.failed, self.ready, self.answering = False, {}, []
        self.query_one(ErrorPanel).show(None)
        self.query_one("#chat-status", Static).update(Text(f"starting `slothlab chat "
                                                           f"{self.run_dir}`…", style="dim"))
        self.process = ChatProcess(self.run_dir, self._deliver, slothlab=self.slothlab,
                                   extra_args=self.extra_args)
        self.run_worker(self.process.run(), name="chat", group="chat", exclusive=True)

    async def on_unmount(self) -> None:
        """Leaving the screen (or the app) ends the chat process, whatever its worker is doing."""
        if self.process is not None:
            await self.process.close()

    def _deliver(self, message: dict[str, Any]) -> None:
        self.post_message(self.Response(message))

    def send(self, request: dict[str, Any]) -> None:
        if self.process is None or not self.process.send(request):
            self.notify("the chat process is not running (F5 restarts it)", severity="warning")

    def pane(self, mode: str) -> ChatPane:
        return self.query_one(f"#pane-{mode}", ChatPane)

    @property
    def panes(self) -> list[ChatPane]:
        return [self.pane("base"), self.pane("tuned")]

    # -- responses ---------------------------------------------------------------------------
    def on_chat_screen_response(self, event: Response) -> None:
        m = event.message
        handler = getattr(self, f"_on_{m['type']}", None)
        if handler is not None:
            handler(m)

    def _on_ready(self, m: dict[str, Any]) -> None:
        self.ready, self.state = m, m
        prompt = self.query_one("#prompt", Input)
        prompt.disabled = False
        prompt.placeholder = "message · /system TEXT · /set temperature=0.7 · /reset · F2 eval prompts"
        prompt.focus()
        for pane in self.panes:
            if m.get("checkpoint"):
                pane.note(f"adapter: {Path(m['checkpoint']).name} (the run stopped before "
                          "adapter/ was written)")
            if not m.get("multi_turn", True):
                pane.note("single-turn: this recipe's prompt_template holds one instruction, "
                          "so each message is answered on its own")
            if m.get("eval_note"):
                pane.note(m["eval_note"])
        self.show_status()

    def _on_info(self, m: dict[str, Any]) -> None:
        self.state = {**self.state, **m}
        if m.get("command") == "reset":
            for pane in self.panes:
                pane.rule("new conversation")
        self.show_status()
        self.notify(m.get("message", ""), timeout=3)

    def _on_turn(self, m: dict[str, Any]) -> None:
        self.answering = list(m["modes"])
        for pane in self.panes:
            if m.get("eval_index") is not None:
                pane.rule(f"eval prompt {m['eval_index']}: a new conversation as the eval asked it")
            pane.add_user(m["text"])
            if pane.mode in self.answering:
                pane.begin()
            else:
                pane.note(f"(not asked: {MODE_LABEL[self.state.get('mode', 'both')]})")
        self.show_status()

    def _on_token(self, m: dict[str, Any]) -> None:
        self.pane(m["mode"]).append(m["text"])

    def _on_done(self, m: dict[str, Any]) -> None:
        limit = (self.state.get("settings") or {}).get("max_new_tokens", 0)
        self.pane(m["mode"]).finish(m["text"], answer_notes(m, limit))
        if m["mode"] in self.answering:
            self.answering.remove(m["mode"])
        self.show_status()

    def _on_error(self, m: dict[str, Any]) -> None:
        if m.get("fatal"):
            self.fail(m.get("message", "the chat could not start"), m.get("fix") or "")
            return
        for mode in self.answering:
            self.pane(mode).finish("", ["(failed)"])
        self.answering = []
        where = f"{m['where']}: " if m.get("where") else ""
        fix = f"\n→ {m['fix']}" if m.get("fix") else ""
        self.notify(f"{where}{m.get('message', '')}{fix}", severity="error", timeout=8)
        self.show_status()

    def _on_exit(self, m: dict[str, Any]) -> None:
        for mode in self.answering:
            self.pane(mode).finish("", ["(the chat process ended)"])
        self.answering = []
        if self.failed or not self.is_mounted:
            return
        tail = "\n".join(m.get("stderr", [])[-8:])
        self.fail(f"the chat process ended (exit code {m.get('code')})",
                  "F5 starts it again; Esc goes back" + (f"\n{tail}" if tail else ""))

    def fail(self, what: str, fix: str) -> None:
        self.failed = True
        panel = self.query_one(ErrorPanel)
        panel.border_title = "chat"
        panel.show((what, fix))
        self.query_one("#prompt", Input).disabled = True
        self.query_one("#chat-status", Static).update(Text("chat process not running",
                                                           style="bold red"))
        self.refresh_bindings()

    def show_status(self) -> None:
        s = self.state
        if not s:
            return
        settings = s.get("settings") or {}
        loaded = self.ready.get("loaded") or {}
        text = Text()
        text.append(MODE_LABEL.get(s.get("mode", ""), ""), style="bold")
        text.append(f" · {settings.get('decoding', '?')}, max_new_tokens "
                    f"{settings.get('max_new_tokens', '?')}")
        text.append(f" · system: {s.get('system') or '(none)'}")
        text.append(f" · {loaded.get('weights', '?')} on {loaded.get('device', '?')}", style="dim")
        if self.answering:
            text.append("  answering… (Esc stops)", style="italic")
        self.query_one("#chat-status", Static).update(text)

    # -- input and keys ----------------------------------------------------------------------
    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        if not text:
            return
        if self.answering:
            self.notify("still answering: Esc stops the answer", severity="warning")
            return
        event.input.value = ""
        if text.lower() in ("/quit", "/exit", "/q"):
            self.app.pop_screen()  # the process ends as the screen closes
        elif text.lower() == "/evals":
            self.action_eval_prompts()
        elif text.startswith("/"):
            self.send({"type": "command", "text": text})
        else:
            self.send({"type": "user", "text": text})

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "restart":
            return self.failed
        if action in ("eval_prompts", "cycle_mode", "reset"):
            return bool(self.ready) and not self.failed
        return True

    def action_back(self) -> None:
        if self.answering and not self.failed:
            self.send({"type": "stop"})
            return
        self.app.pop_screen()

    def action_eval_prompts(self) -> None:
        prompts = self.ready.get("eval_prompts") or []
        if not prompts:
            self.notify(self.ready.get("eval_note") or "this run has no eval prompts")
            return
        if self.answering:
            self.notify("still answering: Esc stops the answer", severity="warning")
            return
        from tui.screens.eval_prompts import EvalPromptsScreen

        def chosen(index: int | None) -> None:
            if index is not None:
                self.send({"type": "eval", "index": index})

        self.app.push_screen(EvalPromptsScreen(prompts, self.ready.get("eval_note", "")), chosen)

    def action_cycle_mode(self) -> None:
        self.send({"type": "command", "text": "/" + NEXT_MODE[self.state.get("mode", "both")]})

    def action_reset(self) -> None:
        if not self.answering:
            self.send({"type": "command", "text": "/reset"})

    def action_restart(self) -> None:
        if self.failed:
            for pane in self.panes:
                pane.clear()
            self.start()
