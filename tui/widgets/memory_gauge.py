"""VRAM (or RAM on a CPU, labelled so) now / peak / total, as a bar with a peak mark."""

from __future__ import annotations

from rich.text import Text
from textual.widgets import Static

from recipes.events import Memory


def share_style(share: float) -> str:
    """The bar's colour by the share of the total in use: green, yellow past 75%, red past 90%."""
    return "red" if share > 0.9 else "yellow" if share > 0.75 else "green"


def render_gauge(memory: Memory | None, width: int) -> Text:
    if memory is None:
        return Text("memory: no reading yet", style="dim")
    label = "VRAM" if memory.kind == "vram" else "RAM"
    known_total = memory.total_mb > 0
    total = memory.total_mb if known_total else max(memory.peak_mb, memory.now_mb, 1.0)
    bar_width = max(8, width)
    now = min(bar_width, round(bar_width * memory.now_mb / total))
    peak = min(bar_width - 1, round(bar_width * memory.peak_mb / total))
    text = Text(f"{label} ", style="bold")
    if known_total:
        text.append(f"{memory.now_mb / 1024:.2f}/{total / 1024:.1f} GiB\n")
    else:  # no total to hold it against: the bar is against the peak, and not a warning
        text.append(f"{memory.now_mb / 1024:.2f} GiB (total unknown)\n")
    style = share_style(memory.now_mb / total if known_total else 0.0)
    for i in range(bar_width):
        if i == peak and peak >= now:
            text.append("│" if i >= now else "█", style="bold magenta")
        elif i < now:
            text.append("█", style=style)
        else:
            text.append("░", style="dim")
    what = "" if memory.kind == "vram" else " (RSS)"
    text.append(f"\npeak {memory.peak_mb / 1024:.2f} GiB{what}", style="magenta")
    return text


class MemoryGauge(Static):
    DEFAULT_CSS = """
    MemoryGauge {
        height: 3;
        margin: 1 0 0 0;
    }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.memory: Memory | None = None

    def show(self, memory: Memory | None) -> None:
        self.memory = memory
        self.update(render_gauge(memory, self.size.width or 30))

    def on_resize(self) -> None:
        self.update(render_gauge(self.memory, self.size.width or 30))
