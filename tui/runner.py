"""Runs `slothlab --json` as a subprocess and folds its event stream into a RunState.

Training never runs in the TUI's process: a crash or a CUDA OOM cannot take the UI down, Stop
is a real SIGINT (the trainer finishes the step, saves a checkpoint and emits ``stopped``), and
memory is freed when the process ends. ``RunProcess.run()`` is awaited by an async worker; its
``finally`` makes sure no process outlives it (SIGINT, then SIGKILL after a grace period).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recipes import events as ev
from recipes.schema import Recipe, dump_recipe
from tui.child_output import forward_stderr, lines, wait_or_kill
from tui.runstate import RunState

SLOTHLAB = (sys.executable, "-m", "tui.cli")
STOP_GRACE_SECONDS = 30.0
LINE_LIMIT = 16 * 1024 * 1024  # one event line (eval samples can be long)


@dataclass
class RunSpec:
    """What to start: a recipe file (as is, or an edited Recipe) or a run to resume."""

    recipe_path: Path | None = None
    recipe: Recipe | None = None  # edited in the form: written to a temporary YAML
    tiny: bool = False
    resume_dir: Path | None = None
    extra_args: list[str] = field(default_factory=list)

    @property
    def title(self) -> str:
        if self.resume_dir is not None:
            return self.resume_dir.name
        if self.recipe is not None:
            return self.recipe.name
        return self.recipe_path.stem if self.recipe_path else "run"


def command(spec: RunSpec, runs_dir: Path, recipe_file: Path | None,
            slothlab: tuple[str, ...] = SLOTHLAB) -> list[str]:
    if spec.resume_dir is not None:
        return [*slothlab, "--resume", str(spec.resume_dir), "--json", *spec.extra_args]
    if recipe_file is None:
        raise ValueError("no recipe to run")
    args = [*slothlab, "--recipe", str(recipe_file), "--json", "--runs-dir", str(runs_dir)]
    if spec.tiny:
        args.append("--tiny")
    return [*args, *spec.extra_args]


class RunProcess:
    """One subprocess run. ``await run()`` streams until the process exits."""

    def __init__(self, spec: RunSpec, state: RunState, runs_dir: Path, *,
                 slothlab: tuple[str, ...] = SLOTHLAB, grace: float = STOP_GRACE_SECONDS,
                 on_event: Callable[[ev.Event], None] | None = None) -> None:
        self.spec = spec
        self.state = state
        self.runs_dir = runs_dir
        self.slothlab = slothlab
        self.grace = grace
        self.on_event = on_event
        self.proc: asyncio.subprocess.Process | None = None
        self._stop = asyncio.Event()
        self.detached = False  # left running when the app quits: never signalled by it

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.returncode is None

    def detach(self) -> None:
        """Leave the run going when this app exits ("leave it running and quit"): nothing in
        ``run()``'s cleanup signals it. It survives a closed pipe (events.jsonl has every
        event) as it survives a closed terminal; History follows it from its events.jsonl."""
        self.detached = True

    def request_stop(self) -> None:
        """Graceful stop: SIGINT now; ``run()`` escalates to SIGKILL after the grace period."""
        self.state.stop_requested = True
        self.state.version += 1
        self._signal(signal.SIGINT)
        self._stop.set()

    def _signal(self, sig: int) -> None:
        if self.running:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                if sig == signal.SIGKILL:
                    # The run has its own session: kill its whole process group, children too.
                    os.killpg(self.proc.pid, sig)  # type: ignore[union-attr]
                else:
                    self.proc.send_signal(sig)  # type: ignore[union-attr]

    async def run(self) -> int:
        temp_dir: str | None = None
        recipe_file = self.spec.recipe_path
        try:
            if self.spec.recipe is not None:
                temp_dir = tempfile.mkdtemp(prefix="slothlab-tui-")
                safe = re.sub(r"[^A-Za-z0-9._-]+", "-", self.spec.recipe.name).strip(".-")
                recipe_file = Path(temp_dir) / f"{safe or 'recipe'}.yaml"
                recipe_file.write_text(dump_recipe(self.spec.recipe), encoding="utf-8")
            argv = command(self.spec, self.runs_dir, recipe_file, self.slothlab)
            if not self.state.live:
                self.state.begin_live()
            self.state.note("$ slothlab " + " ".join(_display_arg(a)
                                                     for a in argv[len(self.slothlab):]), "dim")
            env = {**os.environ, "PYTHONUNBUFFERED": "1"}
            self.proc = await asyncio.create_subprocess_exec(
                *argv, stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE, env=env, limit=LINE_LIMIT,
                start_new_session=True,  # the terminal's signals are the TUI's, not the run's
            )
            await asyncio.gather(self._read_stdout(), self._read_stderr(), self._escalate())
            code = await self.proc.wait()
            self.state.process_exited(code)
            return code
        except (OSError, ValueError) as exc:  # the interpreter or a file could not be used
            self.state.live = False
            self.state.error = f"could not start the run: {exc}"
            self.state.version += 1
            return -1
        finally:
            if not self.detached:
                await self._ensure_dead()
            self.state.live = False
            if temp_dir is not None and not self.detached:  # a detached run may still read it
                with contextlib.suppress(OSError):
                    for child in Path(temp_dir).iterdir():
                        child.unlink()
                    os.rmdir(temp_dir)

    async def _read_stdout(self) -> None:
        assert self.proc is not None and self.proc.stdout is not None
        async for line in lines(self.proc.stdout):
            try:
                event = ev.parse_event(line)
            except (ValueError, TypeError):
                self.state.add_stderr(line)  # not an event: library output on stdout
                continue
            if isinstance(event, ev.RunStarted) and self.state.run_dir is None:
                self.state.run_dir = Path(event.run_dir)
            self.state.apply(event)
            if self.on_event is not None:
                self.on_event(event)

    async def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        await forward_stderr(self.proc.stderr, self.state.add_stderr)

    async def _escalate(self) -> None:
        """After a stop request, wait ``grace`` seconds for the checkpoint, then kill."""
        assert self.proc is not None
        waiter = asyncio.ensure_future(self.proc.wait())
        stopper = asyncio.ensure_future(self._stop.wait())
        try:
            await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            if waiter.done():
                return
            try:
                await asyncio.wait_for(asyncio.shield(waiter), self.grace)
            except TimeoutError:
                self.state.note(f"no exit {self.grace:g} s after the stop request: killing it",
                                "bold red")
                self._signal(signal.SIGKILL)
        finally:
            stopper.cancel()
            if not waiter.done():
                waiter.cancel()

    async def terminate(self) -> None:
        """Stop now and wait: SIGINT, then SIGKILL after the grace period."""
        await self._ensure_dead()

    async def _ensure_dead(self) -> None:
        """Called from ``finally``: a cancelled reader must not leave the run going."""
        if not self.running:
            return
        if not self._stop.is_set():
            # One SIGINT only: a second one would make the trainer stop without a checkpoint.
            self._signal(signal.SIGINT)
        await wait_or_kill(self.proc, self.grace)  # type: ignore[arg-type]


def _display_arg(arg: str) -> str:
    return f"'{arg}'" if " " in arg else arg
