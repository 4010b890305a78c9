"""Small formatting helpers shared by the widgets: durations, sizes, paths, numbers."""

from __future__ import annotations

import os
from pathlib import Path


def duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:  # None, NaN or negative
        return "--:--"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def plural(count: float, noun: str) -> str:
    """"1 epoch", "2 epochs", "0.5 epochs"."""
    return f"{count:g} {noun}{'' if count == 1 else 's'}"


def gib(mb: float) -> str:
    return f"{mb / 1024:.2f}"


def number(value: float | None, digits: int = 4) -> str:
    if value is None:
        return "–"
    if value != 0 and (abs(value) < 1e-3 or abs(value) >= 1e5):
        return f"{value:.2e}"
    return f"{value:.{digits}f}"


def short_path(path: str | Path | None) -> str:
    """``path`` relative to the working directory when it lies under it (shorter, stable)."""
    if not path:
        return ""
    path = Path(path)
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except (ValueError, OSError):
        home = os.path.expanduser("~")
        text = str(path)
        return "~" + text[len(home):] if home != "/" and text.startswith(home + "/") else text
