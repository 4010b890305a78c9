"""Runs `slothlab chat RUN --json` as a subprocess for the Chat screen, as runner.py runs training.

The model lives in the child: torch never loads in the TUI's process, and a crash or an out
of memory ends the child, not the UI. Requests go to its stdin as JSON lines, responses come
back from its stdout (the protocol is in tui/chat_cli.py) and are handed to ``on_message``;
when the process ends, one last ``{"type": "exit", "code", "stderr"}`` message says how.
``run()`` is awaited by an async worker; its ``finally`` ends the chat (end of input, then
SIGKILL after a short grace: a chat has nothing to save) so no process outlives it.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tui.child_output import forward_messages, forward_stderr, kill_group, wait_or_kill
from tui.runner import LINE_LIMIT, SLOTHLAB

CLOSE_GRACE_SECONDS = 3.0
STDERR_KEPT = 30  # lines of the child's stderr shown when it dies


def chat_command(run_dir: Path, slothlab: tuple[str, ...] = SLOTHLAB,
                 extra: list[str] | None = None) -> list[str]:
    return [*slothlab, "chat", str(run_dir), "--json", *(extra or [])]


class ChatProcess:
    def __init__(self, run_dir: Path, on_message: Callable[[dict[str, Any]], None], *,
                 slothlab: tuple[str, ...] = SLOTHLAB, extra_args: list[str] | None = None,
                 grace: float = CLOSE_GRACE_SECONDS) -> None:
        self.argv = chat_command(run_dir, slothlab, extra_args)
        self.on_message = on_message
        self.grace = grace
        self.proc: asyncio.subprocess.Process | None = None
        self.stderr: collections.deque[str] = collections.deque(maxlen=STDERR_KEPT)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def send(self, request: dict[str, Any]) -> bool:
        """Queue one request for the child; False when it is not there to read it."""
        if not self.running or self.proc.stdin is None:  # type: ignore[union-attr]
            return False
        try:
            self.proc.stdin.write((json.dumps(request) + "\n").encode())  # type: ignore[union-attr]
        except (ConnectionError, RuntimeError):
            return False
        return True

    async def run(self) -> int:
        code = -1
        try:
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, limit=LINE_LIMIT,
                start_new_session=True)  # the terminal's Ctrl-C is the TUI's, not the chat's
            await asyncio.gather(self._read_stdout(), self._read_stderr())
            code = await self.proc.wait()
        except OSError as exc:  # the interpreter could not be started
            self.stderr.append(f"could not start `{' '.join(self.argv)}`: {exc}")
        finally:
            await self.close()
        self.on_message({"type": "exit", "code": code, "stderr": list(self.stderr)})
        return code

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        await forward_messages(self.proc.stdout, self.on_message, self.stderr.append)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        await forward_stderr(self.proc.stderr, self.stderr.append)

    async def close(self) -> None:
        """End the chat: end of input (it quits), then SIGKILL to its group after the grace."""
        if not self.running:
            return
        assert self.proc is not None
        with contextlib.suppress(OSError, RuntimeError):
            if self.proc.stdin is not None:
                self.proc.stdin.close()
        await wait_or_kill(self.proc, self.grace)

    def kill(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
