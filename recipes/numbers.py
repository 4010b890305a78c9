"""How a metric's value, change and relative change read in every table (report.md,
experiment.md, `slothlab eval`, the experiment table): one format, no heavy imports."""

from __future__ import annotations

WIDE = ("bleu", "chrf", "perplexity")  # 0-100 scales and perplexities: 2 decimals


def metric_value(value: float | None, name: str = "") -> str:
    """4 decimals; 2 for BLEU, chrF (per task too: ``chrf/mt``) and perplexities."""
    if value is None:
        return "–"
    wide = name in WIDE or name.startswith("chrf/")
    return f"{value:.2f}" if wide else f"{value:.4f}"


def change(value: float | None) -> str:
    return "–" if value is None else f"{value:+.4f}"


def relative(value: float | None) -> str:
    return "–" if value is None else f"{value * 100:+.1f}%"
