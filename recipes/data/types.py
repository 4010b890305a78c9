"""The data pipeline's records: examples, tokenized items, splits and what a load returns."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

IGNORE_INDEX = -100


@dataclass
class Example:
    """One conversation (or, for plain text, one document), normalised.

    ``row`` is the 1-based row number in the source. A message is ``{role, content}`` with
    role system / user / assistant / tool; an assistant message may carry ``tool_calls``
    (``[{type: function, function: {name, arguments}}]``) and ``weight: 0`` (shown, not
    trained); the first message carries the row's ``tools`` list, if it has one.
    """

    row: int
    messages: list[dict[str, Any]]
    fields: dict[str, str] | None = None  # instruction-format fields, for prompt templates
    meta: dict[str, str] = field(default_factory=dict)  # task / lang, for balancing and reports
    group: str = ""  # the split_by value: equal groups land in one split ("" = the prompt)
    text: str | None = None  # plain-text layout: the document (messages is empty)


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
    """The examples of each split. Plain text keeps its held-out documents aside (``held_out``):
    they are packed into validation blocks and never decoded as prompts."""

    train: list[Example]
    val: list[Example]
    test: list[Example]
    held_out: list[Example] = field(default_factory=list)

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val) + len(self.held_out),
                "test": len(self.test)}


@dataclass
class PreparedData:
    splits: Splits
    train: list[Tokenized]
    val: list[Tokenized]
    stats: dict[str, Any]
    notes: list[str] = field(default_factory=list)



@dataclass
class Loaded:
    """Normalised examples, rows skipped by reason, rows read, and notes for the preflight.

    ``layout`` and ``columns`` say how the rows were read (e.g. ``alpaca``, ``{instruction:
    'instruction', response: 'output'}``); ``locate`` names a row (``Example.row``) in a
    message: ``("data.jsonl", "line 7")``.
    """

    examples: list[Example]
    skipped: dict[str, int]
    n_rows: int
    notes: list[str] = field(default_factory=list)
    layout: str = ""
    columns: dict[str, str] = field(default_factory=dict)
    locate: Callable[[int], tuple[str, str]] | None = None

    def __iter__(self):  # ``examples, skipped, n_rows = load_examples(...)`` keeps working
        return iter((self.examples, self.skipped, self.n_rows))

