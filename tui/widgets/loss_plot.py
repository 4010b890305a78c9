"""Curves (loss, learning rate, grad norm; one run or several) drawn with plotext in braille.

What a plot needs to be read at a glance in a terminal, and plotext does not do by itself:
integer step ticks (steps are counts), y labels at evenly spaced round values, the legend on
its own line above the curves (never drawn over them), a log scale on request (``y``), and a
minimum height below which it says so instead of drawing a squashed line.

Rendering a plotext figure costs 10-30 ms, so the figure is rebuilt only when the data, the
size, the scale or the theme changed; every other repaint reuses the last text.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from rich.text import Text
from textual.app import ComposeResult, RenderResult
from textual.containers import Vertical
from textual.widgets import Static
from textual_plotext import PlotextPlot

from recipes.safe_text import safe_text

# Distinct in light and dark themes (plotext RGB tuples).
PALETTE = [(52, 152, 255), (255, 140, 0), (60, 180, 75), (230, 25, 75), (170, 90, 230),
           (0, 160, 160), (190, 130, 60), (240, 50, 230)]
MIN_PLOT_ROWS = 5  # below this a braille line says nothing


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    marker: str = "braille"  # "braille" for dense lines, "dot"/"hd" for sparse points


def nice_step(span: float, count: int) -> float:
    """A round step (1, 2 or 5 × 10^k) giving about ``count`` intervals over ``span``."""
    if span <= 0 or count < 1:
        return 1.0
    raw = span / count
    power = 10 ** math.floor(math.log10(raw))
    return next(m * power for m in (1, 2, 5, 10) if m * power >= raw)


def nice_ticks(lo: float, hi: float, count: int, integer: bool = False) -> list[float]:
    """Evenly spaced round values covering [lo, hi] (integers only with ``integer``)."""
    if hi < lo:
        lo, hi = hi, lo
    if hi == lo:
        return [lo]
    step = nice_step(hi - lo, max(1, count))
    if integer:
        step = max(1.0, round(step))
    first = math.ceil(lo / step - 1e-9) * step
    ticks, value = [], first
    while value <= hi + step * 1e-9:
        ticks.append(round(value, 12))
        value += step
    return ticks or [lo]


def tick_label(value: float, step: float) -> str:
    """``value`` with as many decimals as the tick step needs (all labels alike)."""
    if value != 0 and (abs(value) >= 1e5 or abs(value) < 1e-3):
        return f"{value:.1e}"
    decimals = max(0, -math.floor(math.log10(step))) if step > 0 else 0
    return f"{value:.{min(decimals, 6)}f}"


def legend(curves: list[Curve]) -> Text:
    text = Text()
    for i, curve in enumerate(curves):
        r, g, b = PALETTE[i % len(PALETTE)]
        if i:
            text.append("   ")
        text.append("━━ " if curve.marker == "braille" else "•• ", style=f"bold rgb({r},{g},{b})")
        text.append(safe_text(curve.label, multiline=False))
    return text


class _Figure(PlotextPlot):
    """The plotext canvas of a ``LossPlot``, cached between repaints."""

    DEFAULT_CSS = """
    _Figure {
        height: 1fr;
    }
    """

    def __init__(self, owner: LossPlot) -> None:
        super().__init__()
        self.owner = owner
        self._key: tuple | None = None
        self._cache: Text = Text("")

    def render(self) -> RenderResult:
        owner = self.owner
        width, height = self.size.width, self.size.height
        key = (owner.data_version, owner.log_scale, width, height, self.app.theme)
        if key == self._key:
            return self._cache
        self._key = key
        curves = owner.visible_curves
        if not curves:
            self._cache = Text(owner.empty_message, style="dim", justify="center")
        elif width < 20 or height < MIN_PLOT_ROWS:
            self._cache = Text("too small to plot: make the window taller", style="dim",
                               justify="center")
        else:
            self._cache = self._draw(curves, width, height)
        return self._cache

    def _draw(self, curves: list[Curve], width: int, height: int) -> Text:
        plt = self.plt
        plt.clear_data()
        plt.clear_figure()
        log = self.owner.log_scale
        xs_all = [x for c in curves for x in c.xs]
        ys_all = [y for c in curves for y in (_log(c.ys) if log else c.ys) if y is not None]
        for i, curve in enumerate(curves):
            ys = _log(curve.ys) if log else curve.ys
            points = [(x, y) for x, y in zip(curve.xs, ys, strict=False) if y is not None]
            if points:
                plt.plot([p[0] for p in points], [p[1] for p in points], marker=curve.marker,
                         color=PALETTE[i % len(PALETTE)])
        x_lo, x_hi = min(xs_all), max(xs_all)
        x_ticks = nice_ticks(x_lo, x_hi, max(2, width // 14), integer=True)
        plt.xticks(x_ticks, [f"{int(t)}" for t in x_ticks])
        if ys_all:
            y_lo, y_hi = min(ys_all), max(ys_all)
            y_ticks = nice_ticks(y_lo, y_hi, max(2, (height - 3) // 2))
            step = y_ticks[1] - y_ticks[0] if len(y_ticks) > 1 else abs(y_hi) or 1.0
            labels = ([f"{10 ** t:.3g}" for t in y_ticks] if log
                      else [tick_label(t, step) for t in y_ticks])
            plt.yticks(y_ticks, labels)
        plt.xlabel(self.owner.x_label if height >= 10 else "")  # short: a row for the curves
        return super().render()  # type: ignore[return-value]


def _log(ys: list[float]) -> list[float | None]:
    return [math.log10(y) if y > 0 else None for y in ys]


class LossPlot(Vertical):
    """A titled plot with its legend on the line above it. ``set_curves`` gives it data;
    ``log_scale`` switches the y axis (only values above zero are drawn then)."""

    DEFAULT_CSS = """
    LossPlot {
        min-height: 9;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
        border-subtitle-color: $text-muted;
    }
    LossPlot > .legend {
        height: 1;
        padding: 0 1;
    }
    """

    def __init__(self, title: str = "loss", **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = title
        self.curves: list[Curve] = []
        self.data_version = 0
        self.log_scale = False
        self.empty_message = "waiting for the first step…"
        self.x_label = "step"

    def compose(self) -> ComposeResult:
        yield Static("", classes="legend")
        yield _Figure(self)

    @property
    def visible_curves(self) -> list[Curve]:
        return [c for c in self.curves if c.xs]

    def set_curves(self, curves: list[Curve]) -> None:
        self.curves = curves
        self.data_version += 1
        if self.is_mounted:
            self.query_one(".legend", Static).update(legend(self.visible_curves))
            self.query_one(_Figure).refresh()

    def toggle_log(self) -> bool:
        self.log_scale = not self.log_scale
        if self.is_mounted:
            self.query_one(_Figure).refresh()
        return self.log_scale

    def on_mount(self) -> None:
        self.set_curves(self.curves)
