"""A slothlab child process's output, line by line, and its end: what every driving front end
uses.

The TUI drives training, chat and export as subprocesses that speak JSON lines on stdout;
stderr carries library output and progress bars (whose updates are split at carriage returns).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections.abc import AsyncIterator, Callable


async def lines(stream: asyncio.StreamReader) -> AsyncIterator[str]:
    """Each non-empty line, decoded and stripped; a line over the stream's limit is skipped."""
    while True:
        try:
            raw = await stream.readline()
        except ValueError:  # a line over the limit: skip it, keep reading
            continue
        if not raw:
            return
        line = raw.decode("utf-8", "replace").strip()
        if line:
            yield line


async def forward_stderr(stream: asyncio.StreamReader, sink: Callable[[str], None]) -> None:
    """Every line of stderr to ``sink``, a progress bar's carriage-return updates one by one."""
    async for line in lines(stream):
        for part in line.split("\r"):
            if part.strip():
                sink(part.rstrip())


async def forward_messages(stream: asyncio.StreamReader, on_message: Callable[[dict], None],
                           other: Callable[[str], None]) -> None:
    """JSON-lines protocol messages (objects with a ``type``) to ``on_message``; any other line
    (library output that reached stdout) to ``other``."""
    import json

    async for line in lines(stream):
        try:
            message = json.loads(line)
        except ValueError:
            message = None
        if isinstance(message, dict) and "type" in message:
            on_message(message)
        else:
            other(line)


def kill_group(proc: asyncio.subprocess.Process) -> None:
    """SIGKILL to the child's process group (it was started in a session of its own)."""
    if proc.returncode is None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)


async def wait_or_kill(proc: asyncio.subprocess.Process, grace: float) -> None:
    """Wait ``grace`` seconds for the child to end (it was asked to), then kill its group; a
    cancelled wait kills it at once."""
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        kill_group(proc)
        await proc.wait()
    except asyncio.CancelledError:
        kill_group(proc)
        raise
