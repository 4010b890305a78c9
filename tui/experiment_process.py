"""Runs `slothlab experiment ... --json` as a subprocess for the TUI, as tui/runner.py runs a run.

Training never runs in the TUI's process. The Experiment screen follows the experiment from its
folder on disk (tui/experiments.py); this object only starts the process, learns the folder
from the first event, keeps the tail of stderr (a refusal's "error: ..." lines), stops it with
SIGINT (the running variant saves a checkpoint) and makes sure it does not outlive the app.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
from collections import deque
from pathlib import Path

from recipes import events as ev
from tui.runner import LINE_LIMIT, SLOTHLAB, STOP_GRACE_SECONDS

STDERR_CAP = 40


def experiment_command(experiment: str, *, runs_dir: Path, tiny: bool = False,
                       sets: list[str] | None = None, out: Path | None = None,
                       resume: bool = False, slothlab: tuple[str, ...] = SLOTHLAB) -> list[str]:
    args = [*slothlab, "experiment", experiment, "--json", "--runs-dir", str(runs_dir)]
    for text in sets or []:
        args += ["--set", text]
    if tiny:
        args.append("--tiny")
    if out is not None:
        args += ["--out", str(out)]
    if resume:
        args.append("--resume")
    return args


class ExperimentProcess:
    def __init__(self, argv: list[str], *, grace: float = STOP_GRACE_SECONDS) -> None:
        self.argv = argv
        self.grace = grace
        self.folder: Path | None = None
        self.exit_code: int | None = None
        self.stderr: deque[str] = deque(maxlen=STDERR_CAP)
        self.stop_requested = False
        self.proc: asyncio.subprocess.Process | None = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    @property
    def error(self) -> str:
        """Why it ended without finishing: the CLI's own words, else the end of stderr."""
        if self.exit_code in (None, 0, 130):
            return ""
        lines = [s for s in self.stderr if s.strip()]
        errors = [i for i, s in enumerate(lines) if s.startswith("error:")]
        if errors:
            return "\n".join(lines[errors[-1]:])[len("error:"):].strip()
        return f"exited with code {self.exit_code}:\n" + "\n".join(lines[-8:])

    def request_stop(self) -> None:
        """SIGINT: the running variant stops with a checkpoint, then the experiment."""
        self.stop_requested = True
        if self.running:
            with contextlib.suppress(ProcessLookupError):
                self.proc.send_signal(signal.SIGINT)  # type: ignore[union-attr]

    async def run(self) -> int:
        try:
            self.proc = await asyncio.create_subprocess_exec(
                *self.argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, limit=LINE_LIMIT, start_new_session=True,
                env={**os.environ, "PYTHONUNBUFFERED": "1"})
            await asyncio.gather(self._read_stdout(), self._read_stderr())
            self.exit_code = await self.proc.wait()
        except OSError as exc:
            self.stderr.append(f"error: could not start the experiment: {exc}")
            self.exit_code = -1
        finally:
            await self.terminate()
        return self.exit_code if self.exit_code is not None else -1

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        while True:
            try:
                raw = await self.proc.stdout.readline()
            except ValueError:  # a line over the limit
                continue
            if not raw:
                return
            try:
                event = ev.parse_event(raw.decode("utf-8", "replace"))
            except (ValueError, TypeError):
                continue
            if isinstance(event, ev.ExperimentStarted):
                self.folder = Path(event.experiment_dir)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        while True:
            try:
                raw = await self.proc.stderr.readline()
            except ValueError:
                continue
            if not raw:
                return
            self.stderr.append(raw.decode("utf-8", "replace").rstrip())

    async def terminate(self) -> None:
        """No experiment outlives its reader: SIGINT, then SIGKILL after the grace period."""
        if not self.running:
            return
        if not self.stop_requested:
            self.request_stop()
        try:
            await asyncio.wait_for(self.proc.wait(), self.grace)  # type: ignore[union-attr]
        except (TimeoutError, asyncio.CancelledError):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)  # type: ignore[union-attr]
            await self.proc.wait()  # type: ignore[union-attr]
