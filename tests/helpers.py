"""Small helpers shared by test modules (fixtures live in conftest.py)."""

from __future__ import annotations

import os
from pathlib import Path


def slothlab_env(cache: Path) -> dict[str, str]:
    """The environment of a `python -m tui.cli` child: its own miniature cache, unbuffered."""
    return {**os.environ, "SLOTHLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}
