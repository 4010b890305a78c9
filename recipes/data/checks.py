"""Rows that do not fit: dropped and counted, and refused only above ``max_dropped_fraction``.

Two kinds of row are dropped: one with nothing to learn from (an empty answer, a turn with no
text: ``check_skipped``, at load time) and one whose response ``max_seq_length`` cuts away
entirely (``check_trainable`` then ``drop_untrainable``, after tokenizing; TRL drops such fully
masked examples too). Each refusal names the file, the first rows and the column, and gives a
fix that works: the ``max_seq_length`` that keeps every response, or the
``max_dropped_fraction`` that accepts the loss. A row where no response was found at all is a
template problem, not a length one, and is always refused.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from recipes.data.types import Example, Tokenized
from recipes.errors import DataError
from recipes.schema import Recipe

Locate = Callable[[int], tuple[str, str]]
SHOWN = 8
MIN_RESPONSE_TOKENS = 16


def name_rows(rows: list[int], locate: Locate | None, limit: int = SHOWN,
              total: int | None = None) -> str:
    """'lines 4, 9, 12 …' (or 'rows …', "sheet 'S' rows …") for 1-based example rows;
    ``total``: how many there are, when ``rows`` holds only the first few."""
    labels = [locate(r)[1] if locate else f"row {r}" for r in rows[:limit]]
    more = " …" if max(len(rows), total or 0) > len(labels) else ""
    parsed = [re.fullmatch(r"(.*?)(line|row) (\d+)", label) for label in labels]
    if parsed and all(parsed) and len({(m.group(1), m.group(2)) for m in parsed}) == 1:
        head, unit = parsed[0].group(1), parsed[0].group(2)
        unit = unit + "s" if len(rows) > 1 else unit
        return f"{head}{unit} {', '.join(m.group(3) for m in parsed)}{more}"
    return ", ".join(labels) + more


def accepting(share: float) -> str:
    """The max_dropped_fraction that accepts ``share`` (rounded up to whole percent)."""
    return f"{math.ceil(share * 100 - 1e-9) / 100:g}"


def over_limit(n: int, total: int, recipe: Recipe) -> bool:
    return total > 0 and n / total > recipe.max_dropped_fraction + 1e-9


def needed_length(starts: list[int]) -> int:
    """A max_seq_length that keeps at least 16 response tokens of every example (rounded up)."""
    return -(-(max(starts) + MIN_RESPONSE_TOKENS) // 64) * 64


def check_trainable(stats: dict[str, Any], recipe: Recipe, source: str,
                    locate: Locate | None = None) -> None:
    """Refuse examples left with no trained token when no response was found in them (a
    template problem), or when those cut by max_seq_length are more than max_dropped_fraction
    of the examples (or all of them). Below that the caller drops them (``drop_untrainable``)."""
    rows = stats["no_trained_tokens"]
    if not rows:
        return
    starts = dict(zip(rows, stats.get("response_starts", []), strict=False))
    lost = [r for r in rows if starts.get(r, -1) < 0]
    if lost:
        raise DataError(f"{name_rows(lost, locate)}: no response found after rendering "
                        f"({len(lost)} example(s) would train nothing)", where=source,
                        fix="check that chat_template / prompt_template match the model")
    total = stats.get("examples") or len(rows)
    share = len(rows) / total
    if len(rows) < total and not over_limit(len(rows), total, recipe):
        return
    need = needed_length(list(starts.values()))
    raise DataError(
        f"{name_rows(rows, locate)}: the response starts after max_seq_length="
        f"{recipe.max_seq_length} tokens in {len(rows)} of {total} examples ({share:.0%}), more "
        f"than max_dropped_fraction={recipe.max_dropped_fraction:g}", where=source,
        fix=f"raise max_seq_length (--set max_seq_length={need} keeps at least "
            f"{MIN_RESPONSE_TOKENS} response tokens of every example), drop long prompts with "
            "max_chars"
            + (f", or train without them: --set max_dropped_fraction={accepting(share)}"
               if len(rows) < total else ""))


def drop_untrainable(examples: list[Example], items: list[Tokenized]
                     ) -> tuple[list[Example], list[Tokenized], list[Tokenized]]:
    """(examples kept, their items, items dropped): an example with no trained token left
    after truncation is dropped; ``examples[i]`` is the example of ``items[i]``."""
    kept_examples, kept, dropped = [], [], []
    for example, item in zip(examples, items, strict=True):
        if item.trained:
            kept_examples.append(example)
            kept.append(item)
        else:
            dropped.append(item)
    return kept_examples, kept, dropped


def dropped_report(dropped: list[Tokenized], recipe: Recipe,
                   locate: Locate | None) -> tuple[dict[str, Any], str]:
    """The preflight's figures and note for examples dropped by max_seq_length."""
    if not dropped:
        return {}, ""
    rows = sorted(t.row for t in dropped)
    need = needed_length([t.response_start for t in dropped])
    figures = {"count": len(dropped), "reason": "response cut away by max_seq_length",
               "rows": [locate(r)[1] if locate else f"row {r}" for r in rows[:50]],
               "max_seq_length_to_keep": need}
    note = (f"dropped {len(dropped)} example(s) whose response starts after max_seq_length="
            f"{recipe.max_seq_length} tokens ({name_rows(rows, locate)}); --set "
            f"max_seq_length={need} keeps them")
    return figures, note


def check_skipped(bad: int, total: int, first: tuple[str, str, str, str] | None,
                  rows: str, recipe: Recipe) -> None:
    """Refuse when rows with nothing to learn from are more than max_dropped_fraction.

    ``first``: (file, row label, column, reason) of the first such row; ``rows`` names them.
    """
    if not bad or not over_limit(bad, total, recipe) or first is None:
        return
    file, where, column, reason = first
    share = bad / total
    raise DataError(
        f"{where}, column '{column}': {reason}; {bad} of {total} rows ({share:.0%}) cannot be "
        f"used, more than max_dropped_fraction={recipe.max_dropped_fraction:g}", where=file,
        fix=f"fill in or delete those rows ({rows}), or train without them: "
            f"--set max_dropped_fraction={accepting(share)}")
