"""Runs `slothlab export ... --json` as a subprocess and hands its JSON lines to a callback.

The export loads torch and the model in its own process, as training does: the TUI stays light,
and a crash or an out-of-memory error cannot take it down. ``stop()`` sends SIGINT (the export
removes its temporary folder and exits 130); ``run()`` kills it if it outlives the grace period.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import os
import signal
from collections.abc import Callable
from pathlib import Path

from tui.child_output import forward_messages, forward_stderr, kill_group, wait_or_kill

GRACE_SECONDS = 15.0


def export_command(slothlab: tuple[str, ...], run_dir: Path, target: str,
                   dtype: str | None) -> list[str]:
    return [*slothlab, "export", str(run_dir), "--to", target,
            *(["--dtype", dtype] if dtype else []), "--json"]


class ExportProcess:
    """One export. ``await run()`` returns the exit code; messages arrive through ``on_message``."""

    def __init__(self, argv: list[str], on_message: Callable[[dict], None],
                 grace: float = GRACE_SECONDS) -> None:
        self.argv = argv
        self.on_message = on_message
        self.grace = grace
        self.stderr: collections.deque[str] = collections.deque(maxlen=20)
        self.proc: asyncio.subprocess.Process | None = None
        self._escalation: asyncio.TimerHandle | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def stop(self) -> None:
        """SIGINT now; SIGKILL for the whole group if it still runs after the grace period (a
        child stuck in native code, or one that inherited an ignored SIGINT, never hangs the UI)."""
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]
            if self._escalation is None:
                self._escalation = asyncio.get_running_loop().call_later(
                    self.grace, self._kill_if_running)

    def _kill_if_running(self) -> None:
        if self.running:
            kill_group(self.proc)  # type: ignore[arg-type]

    async def run(self) -> int:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                start_new_session=True, limit=4 * 1024 * 1024)
        except OSError as exc:
            self.stderr.append(f"could not start the export: {exc}")
            return -1
        try:
            await asyncio.gather(self._read_stdout(), self._read_stderr())
            return await self.proc.wait()
        finally:
            await self._ensure_dead()
            if self._escalation is not None:
                self._escalation.cancel()

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        await forward_messages(self.proc.stdout, self.on_message, self.stderr.append)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        await forward_stderr(self.proc.stderr, self.stderr.append)

    async def _ensure_dead(self) -> None:
        if not self.running:
            return
        self.stop()
        await wait_or_kill(self.proc, self.grace)  # type: ignore[arg-type]
