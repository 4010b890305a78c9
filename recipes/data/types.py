"""The data pipeline's records: examples, tokenized items, splits and what a load returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = -100


@dataclass
class Example:
    """One conversation, normalised. ``row`` is the 1-based row number in the source."""

    row: int
    messages: list[dict[str, str]]
    fields: dict[str, str] | None = None  # instruction-format fields, for prompt templates
    meta: dict[str, str] = field(default_factory=dict)  # task / lang, for balancing and reports


@dataclass
class Tokenized:
    """One tokenized example. ids and labels are int32 arrays: 4 bytes a token, not ~70."""

    row: int
    input_ids: np.ndarray
    labels: np.ndarray
    truncated: bool
    response_start: int = -1  # first trained position before truncation; -1: no response found

    @property
    def trained(self) -> int:
        return int(np.count_nonzero(self.labels != IGNORE_INDEX))


@dataclass
class Splits:
    train: list[Example]
    val: list[Example]
    test: list[Example]

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


@dataclass
class PreparedData:
    splits: Splits
    train: list[Tokenized]
    val: list[Tokenized]
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)



@dataclass
class Loaded:
    """Normalised examples, rows skipped by reason, rows read, and notes for the preflight."""

    examples: list[Example]
    skipped: dict[str, int]
    n_rows: int
    notes: list[str] = field(default_factory=list)

    def __iter__(self):  # ``examples, skipped, n_rows = load_examples(...)`` keeps working
        return iter((self.examples, self.skipped, self.n_rows))

