"""Loss curves (train and eval, or several runs) drawn with plotext in braille.

Rendering a plotext figure costs 10-30 ms, so the figure is rebuilt only when the data, the
size or the theme changed; every other repaint reuses the last text.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.text import Text
from textual.app import RenderResult
from textual_plotext import PlotextPlot

# Distinct in light and dark themes (plotext RGB tuples).
PALETTE = [(52, 152, 255), (255, 140, 0), (60, 180, 75), (230, 25, 75), (170, 90, 230),
           (0, 160, 160), (190, 130, 60), (240, 50, 230)]


@dataclass
class Curve:
    label: str
    xs: list[float]
    ys: list[float]
    marker: str = "braille"  # "braille" for dense lines, "dot"/"hd" for sparse points


class LossPlot(PlotextPlot):
    DEFAULT_CSS = """
    LossPlot {
        min-height: 6;
        border: round $primary-darken-2;
        border-title-color: $text-muted;
    }
    """

    def __init__(self, title: str = "loss", **kwargs) -> None:
        super().__init__(**kwargs)
        self.border_title = title
        self._curves: list[Curve] = []
        self._key: tuple | None = None
        self._cache: Text = Text("")
        self._data_version = 0
        self.empty_message = "waiting for the first step…"

    def set_curves(self, curves: list[Curve]) -> None:
        self._curves = curves
        self._data_version += 1
        self.refresh()

    def render(self) -> RenderResult:
        width, height = self.size.width, self.size.height
        key = (self._data_version, width, height, self.app.theme)
        if key == self._key:
            return self._cache
        self._key = key
        curves = [c for c in self._curves if c.xs]
        if not curves or width < 12 or height < 4:
            self._cache = Text(self.empty_message if not curves else "", style="dim",
                               justify="center")
            return self._cache
        plt = self.plt
        plt.clear_data()
        for i, curve in enumerate(curves):
            plt.plot(curve.xs, curve.ys, label=curve.label, marker=curve.marker,
                     color=PALETTE[i % len(PALETTE)])
        plt.xlabel("step")
        self._cache = super().render()  # type: ignore[assignment]
        return self._cache
