"""The terminal chat of `slothlab chat RUN_DIR`: Rich, answers streamed as they are generated.

One model answers in a stream of text under its name; with /both the base and fine-tuned
answers fill two columns side by side. Ctrl-C ends the answer being generated (the chat goes
on); Ctrl-C or Ctrl-D at the prompt, or /quit, ends the chat. Model output is shown with its
control characters made visible, so an answer cannot move the cursor or change colours.
"""

from __future__ import annotations

import argparse
import contextlib
import signal
import sys
from collections.abc import Callable
from typing import Any

from rich.console import Console
from rich.live import Live
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from recipes.safe_text import safe_text

LABELS = {"base": "base (adapter off)", "tuned": "fine-tuned"}
STYLES = {"base": "yellow", "tuned": "green"}


class TerminalChat:
    def __init__(self, args: argparse.Namespace, settings: Any, console: Console | None = None,
                 ask: Callable[[str], str] | None = None) -> None:
        self.args, self.settings = args, settings
        self.console = console or Console(highlight=False)
        self.ask = ask or (lambda prompt: self.console.input(prompt))
        self.session: Any = None
        self.ready: dict[str, Any] = {}
        self.answers: dict[str, str] = {}  # mode -> text so far, this turn
        self.live: Live | None = None

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> int:
        from recipes.chat import ChatError, ChatSession
        from recipes.eval_prompts import load_eval_prompts
        from recipes.trained import load_trained

        with self.console.status(f"loading {self.args.run_dir} …"):
            trained = load_trained(self.args.run_dir, checkpoint=self.args.checkpoint)
            prompts, note = load_eval_prompts(trained)
        self.session = ChatSession(trained, self.settings, emit=self.on_event,
                                   mode=self.args.mode, eval_prompts=prompts)
        self.session.ready(note)
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (line editing and history for input())
        while True:
            try:
                line = self.ask("[bold]you ›[/] ").strip()
            except (EOFError, KeyboardInterrupt):
                self.console.print()
                return 0
            if not sys.stdin.isatty():
                self.console.print(Text(line))  # piped input is not echoed: show what was read
            if not line:
                continue
            try:
                if line == "/evals":
                    self.list_evals()
                elif line.startswith("/"):
                    if not self.interruptible(self.session.command, line):
                        return 0
                else:
                    self.interruptible(self.session.say, line)
            except ChatError as exc:
                self.end_live()
                self.console.print(Text(f"{exc.render()}", style="red"))

    def interruptible(self, work: Callable[[str], Any], line: str) -> Any:
        """Run ``work(line)`` with Ctrl-C ending the current answer instead of the chat."""
        previous = signal.signal(signal.SIGINT, lambda *_: self.session.interrupt.set())
        try:
            return work(line)
        finally:
            signal.signal(signal.SIGINT, previous)
            self.end_live()

    # -- events from the session -----------------------------------------------------------
    def on_event(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind == "ready":
            self.ready = message
            self.banner(message)
        elif kind == "turn":
            self.begin_turn(message)
        elif kind == "token":
            self.token(message["mode"], message["text"])
        elif kind == "done":
            self.done(message)
        elif kind == "info":
            self.console.print(Text(message["message"], style="dim"))

    def banner(self, m: dict[str, Any]) -> None:
        grid = Table.grid(padding=(0, 2))
        grid.add_column(style="bold")
        grid.add_column()
        loaded = m["loaded"]
        adapter = f"{m['checkpoint']} (checkpoint)" if m["checkpoint"] else m["adapter"]
        rows = [("base model", f"{m['base_model']} ({loaded['weights']} on {loaded['device']}, "
                               f"compute {loaded['compute_dtype']})"),
                ("adapter", f"{adapter} ({loaded['adapter_dtype']})"),
                ("prompts", f"{m['template']}; stops at {' '.join(m['stop_tokens'])}"),
                ("decoding", f"{m['settings']['decoding']}, max_new_tokens "
                             f"{m['settings']['max_new_tokens']}"),
                ("system", m["system"] or "(none)"),
                ("answers", {"both": "base and fine-tuned, side by side"}.get(
                    m["mode"], LABELS[m["mode"]]))]
        n = len(m["eval_prompts"])
        rows.append(("eval prompts", f"{n}: /evals lists them, /eval N asks one as the eval did"
                     if n else "none"))
        for key, value in rows:
            grid.add_row(key, Text(value))
        if m["eval_note"]:
            grid.add_row("note", Text(m["eval_note"], style="yellow"))
        if not m["multi_turn"]:
            grid.add_row("turns", Text("single-turn: the prompt_template holds one instruction, "
                                       "so each message is answered on its own", style="yellow"))
        self.console.print(Panel(grid, title=f"slothlab chat · {m['recipe']}",
                                 subtitle="/help for commands · Ctrl-C stops an answer",
                                 title_align="left"))

    def begin_turn(self, m: dict[str, Any]) -> None:
        self.answers = {mode: "" for mode in m["modes"]}
        if m["eval_index"] is not None:
            system = self.session.system if self.session.multi_turn else ""
            head = f"eval prompt {m['eval_index']}" + (f" (system: {system})" if system else "")
            self.console.print(Text(head, style="dim"))
            self.console.print(Text("you › ", style="bold") + Text(safe_text(m["text"])))
        if len(m["modes"]) > 1:
            self.live = Live(self.columns(), console=self.console, refresh_per_second=10)
            self.live.start()

    def token(self, mode: str, text: str) -> None:
        first = not self.answers.get(mode)
        self.answers[mode] = self.answers.get(mode, "") + text
        if self.live is not None:
            self.live.update(self.columns())
            return
        if first:
            self.console.print(Text(f"{LABELS[mode]} › ", style=f"bold {STYLES[mode]}"), end="")
        self.console.print(Text(safe_text(text)), end="")

    def done(self, m: dict[str, Any]) -> None:
        mode, text = m["mode"], m["text"]
        streamed = self.answers.get(mode, "")
        self.answers[mode] = text
        notes = []
        if m["finish"] == "max_new_tokens":
            notes.append(f"cut at max_new_tokens={self.session.settings.max_new_tokens}")
        elif m["finish"] == "stopped":
            notes.append("stopped")
        elif m["finish"] == "label":
            notes.append("the likeliest label, as the eval scores this task")
        if "eval_answer" in m and m["eval_answer"] is not None:
            notes.append("the eval's answer" if m["eval_answer"] == text
                         else f"the eval answered: {safe_text(m['eval_answer'])}")
        if self.live is not None:
            self.answers[mode] = text + "".join(f"\n({n})" for n in notes)
            self.live.update(self.columns())
            return
        if not streamed:
            self.console.print(Text(f"{LABELS[mode]} › ", style=f"bold {STYLES[mode]}"), end="")
        if streamed.strip() != text:
            self.console.print(Text(("\n" if streamed else "") + safe_text(text)), end="")
        self.console.print()
        for note in notes:
            self.console.print(Text(f"  ({note})", style="dim"))

    def columns(self) -> Table:
        table = Table(expand=True, show_lines=False)
        for mode in self.answers:
            table.add_column(LABELS[mode], ratio=1, style=STYLES[mode], overflow="fold")
        table.add_row(*(Text(safe_text(text)) for text in self.answers.values()))
        return table

    def end_live(self) -> None:
        if self.live is not None:
            self.live.stop()
            self.live = None
            if not self.console.is_terminal:
                self.console.print()  # Live leaves no newline after its last frame here

    def list_evals(self) -> None:
        table = Table(title="eval prompts (/eval N asks one as the eval did)", expand=True)
        table.add_column("N", justify="right")
        table.add_column("prompt", ratio=2, overflow="fold")
        table.add_column("the eval's fine-tuned answer", ratio=1, overflow="fold")
        for p in self.ready.get("eval_prompts", []):
            task = f"[{p['task']}] " if p["task"] else ""
            table.add_row(str(p["index"]), Text(task + safe_text(p["question"])),
                          Text(safe_text(p["eval"].get("tuned", "–"))))
        self.console.print(table)
