"""Fit badges: will a recipe fit the card? (`kernels_check.fit.estimate`, imported lazily).

The estimator does not import torch, so it runs in-process (in a thread worker). When it is
missing or fails, the badge is "?" and the reason is kept for the detail panel.

With no card size to hold the estimate against (card "auto" and no GPU detected, or the check
still running or failed) the estimate is made with ``vram_gib=None``: the memory needed is
known, the verdict is not, and the badge says why (``NO_CARD``) instead of guessing a card.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from recipes.schema import Recipe

CARD_SIZES_GIB = (6, 8, 12, 16, 24)
BADGE = {  # verdict -> (short label, CSS-ish style)
    "fits": ("fits", "bold green"),
    "tight": ("tight", "bold yellow"),
    "does not fit": ("does not fit", "bold red"),
    "unknown": ("?", "dim"),
}
# Card "auto" without a detected GPU size: the card source -> the neutral badge.
NO_CARD = {
    "none": ("no GPU", "dim"),
    "pending": ("…", "dim"),
    "unknown": ("?", "dim"),
}


@dataclass
class Fit:
    verdict: str = "unknown"  # fits | tight | does not fit | unknown
    total_gib: float | None = None
    vram_gib: float | None = None
    components: dict[str, float] = field(default_factory=dict)
    max_batch_size: int | None = None
    max_seq_length: int | None = None
    advice: str = ""
    reason: str = ""  # why the verdict is unknown

    @property
    def badge(self) -> tuple[str, str]:
        return BADGE.get(self.verdict, BADGE["unknown"])

    def badge_for(self, source: str) -> tuple[str, str]:
        """The badge against the card from ``source`` (see ``SlothlabApp.card_gib``)."""
        if source in NO_CARD and self.total_gib is not None:
            return NO_CARD[source]
        return self.badge

    @property
    def need(self) -> str:
        return f"{self.total_gib:.1f} GiB" if self.total_gib is not None else "?"


def estimate(recipe: Recipe, vram_gib: float | None) -> Fit:
    try:
        from kernels_check.fit import estimate as fit_estimate
    except ImportError:
        return Fit(reason="VRAM estimator not installed (kernels_check.fit)")
    try:
        report: Any = fit_estimate(recipe, vram_gib=vram_gib)
    except Exception as exc:  # noqa: BLE001 - an estimator bug must not take the UI down
        return Fit(reason=f"estimate failed: {type(exc).__name__}: {exc}"[:200])
    return from_report(report)


def from_report(report: Any) -> Fit:
    def number(name: str) -> float | None:
        value = getattr(report, name, None)
        return float(value) if isinstance(value, (int, float)) else None

    verdict = str(getattr(report, "verdict", "unknown") or "unknown")
    components = getattr(report, "components", None) or {}
    advice = getattr(report, "advice", "") or ""
    if isinstance(advice, (list, tuple)):
        advice = "; ".join(str(a) for a in advice)
    batch, seq = number("max_batch_size"), number("max_seq_length")
    total = number("total_gib")
    if total is not None and total <= 0:
        # The estimator's "I cannot size this model" (an architecture it does not know): no
        # memory need at all, not a need of 0.0 GiB. Its ``reason`` says why.
        total, verdict = None, "unknown"
    return Fit(
        verdict=verdict if verdict in BADGE else "unknown",
        total_gib=total,
        vram_gib=number("vram_gib"),
        components={str(k): float(v) for k, v in dict(components).items()
                    if isinstance(v, (int, float))},
        max_batch_size=int(batch) if batch is not None else None,
        max_seq_length=int(seq) if seq is not None else None,
        advice=str(advice),
        reason="" if verdict in BADGE and verdict != "unknown"
        else str(getattr(report, "reason", "") or "the estimator could not tell"),
    )
