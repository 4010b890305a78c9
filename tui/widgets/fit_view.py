"""A recipe's VRAM estimate against the card: the verdict, the parts, the largest that fits."""

from __future__ import annotations

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tui.fit import NO_CARD, Fit

SOURCE_NOTE = {"detected": " (detected)", "chosen": ""}
# No card size to check against (card "auto"): what the estimate is missing, and what to do.
NO_CARD_NOTE = {
    "none": "no GPU detected: pick a card size (c on Recipes) to check one",
    "pending": "checking this machine for a GPU…",
    "unknown": "the GPU check failed: pick a card size (c on Recipes) to check one",
}


def card_label(vram_gib: float | None, source: str) -> str:
    if vram_gib is None:
        return "card of unknown size"
    return f"{vram_gib:g} GiB card{SOURCE_NOTE.get(source, '')}"


def render_fit(fit: Fit | None, vram_gib: float | None, source: str) -> Group | Text:
    if fit is None:
        return Text("estimating…", style="dim")
    label, style = fit.badge_for(source)
    head = Text()
    head.append(f" {label} ", style=f"reverse {style}")
    if source in NO_CARD and fit.total_gib is not None:
        head.append(f"  needs {fit.need} on a GPU")
        return Group(head, Text(NO_CARD_NOTE[source], style="dim"), _parts(fit))
    if fit.total_gib is None:  # the estimator could not size the model at all
        head.append("  memory need unknown")
        lines = [head, Text(fit.reason or "the estimator could not tell", style="dim")]
        if fit.advice:
            lines.append(Text(f"→ {fit.advice}", style="yellow"))
        return Group(*lines)
    if fit.verdict == "unknown":
        head.append(f"  no estimate for a {card_label(vram_gib, source)}")
        lines = [head, Text(fit.reason or "no estimate", style="dim")]
        if fit.advice:
            lines.append(Text(f"→ {fit.advice}", style="yellow"))
        return Group(*lines)
    head.append(f"  needs {fit.need} · {card_label(fit.vram_gib or vram_gib, source)}")
    lines: list = [head, _parts(fit)]
    limits = []
    if fit.max_batch_size:
        limits.append(f"batch_size {fit.max_batch_size}")
    if fit.max_seq_length:
        limits.append(f"max_seq_length {fit.max_seq_length}")
    if limits:
        lines.append(Text("largest that fits: " + " · ".join(limits), style="cyan"))
    if fit.advice:
        lines.append(Text(f"→ {fit.advice}", style="yellow"))
    return Group(*lines)


def _parts(fit: Fit) -> Table:
    """The estimate's components, largest first."""
    parts = Table.grid(padding=(0, 1))
    parts.add_column(style="dim")
    parts.add_column(justify="right")
    shown = sorted(((v, k) for k, v in fit.components.items() if v >= 0.005), reverse=True)
    for value, name in shown:
        parts.add_row(name.replace("_", " "), f"{value:.2f} GiB")
    hidden = len(fit.components) - len(shown)
    if hidden:
        parts.add_row(f"+ {hidden} more", "< 0.01 GiB")
    return parts


class FitView(Static):
    DEFAULT_CSS = """
    FitView {
        height: auto;
        padding: 0 1;
    }
    """

    def show(self, fit: Fit | None, vram_gib: float | None, source: str = "chosen") -> None:
        self.update(render_fit(fit, vram_gib, source))
