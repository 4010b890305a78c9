"""One process per run: a lock in the run folder, held by the training process.

``fcntl.flock`` on ``<run>/.lock``: the kernel releases it when the process ends, however it
ends (kill -9 included), so a stale lock never blocks a resume. The file holds the pid, so a
refusal can name the process that trains.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import IO

from recipes.errors import RunDirError

LOCK_FILE = ".lock"


def lock_run(run_dir: Path) -> IO[str]:
    """Take the run's lock (keep the returned file open while training) or refuse, naming the
    process that holds it."""
    handle = open(run_dir / LOCK_FILE, "a+", encoding="utf-8")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        pid = handle.read().strip() or "unknown"
        handle.close()
        raise RunDirError(f"this run is being trained by another process (pid {pid})",
                          where=str(run_dir),
                          fix=f"follow it in the terminal UI (`slothlab`, History) or stop it "
                              f"first (kill -INT {pid}), then resume") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def holder(run_dir: Path) -> int | None:
    """The pid training this run now, or None (used by front ends; never blocks)."""
    try:
        with open(run_dir / LOCK_FILE, encoding="utf-8") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except OSError:
                text = handle.read().strip()
                return int(text) if text.isdigit() else -1
            return None
    except FileNotFoundError:
        return None
