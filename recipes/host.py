"""The machine a run trains on: its device, memory, library noise, cache folder and project root.

    from recipes.host import train_device, memory_now
    device = train_device()          # "cuda" or "cpu"
    memory_now(device)               # VRAM on a GPU, process RSS on a CPU, and which it is
"""

from __future__ import annotations

import os
from pathlib import Path

from recipes import events as ev

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def cache_root(explicit: Path | None = None) -> Path:
    """Where miniatures are cached: ``explicit``, $SLOTHLAB_CACHE, or ~/.cache/slothlab."""
    if explicit:
        return explicit
    base = os.environ.get("SLOTHLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "slothlab")
    return Path(base)


def train_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def memory_now(device: str) -> ev.Memory:
    if device == "cuda":
        import torch

        mb = 1024 * 1024
        return ev.Memory("vram", torch.cuda.memory_allocated() / mb,
                         torch.cuda.max_memory_reserved() / mb,
                         torch.cuda.get_device_properties(0).total_memory / mb)
    import resource

    import psutil

    rss = psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ev.Memory("rss", rss, max(rss, peak), psutil.virtual_memory().total / 2**20)


def describe_device(device: str) -> str:
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB, sm_{props.major}{props.minor})"
    import psutil

    return f"CPU ({os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM)"


def quiet_libraries() -> None:
    import logging
    import warnings

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    # bitsandbytes suggests a hub-downloaded CPU kernel; the built-in one works offline.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def slothlab_alive(pid: int) -> bool:
    """Whether ``pid`` is a live slothlab process (a run's or an experiment's; they write their
    pid). A reused pid that now belongs to another program is not."""
    if pid <= 0:
        return False
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return True
    return any(mark in cmdline for mark in (b"slothlab", b"tui.cli", b"tui/cli"))
