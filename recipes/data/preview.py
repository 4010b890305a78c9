"""What the model will see: prepared examples as text parts, trained or not, with token counts.

    from recipes.data.preview import describe
    report = describe(loaded, prepared, tokenizer, recipe, n=3)   # a JSON-able dict

Used by ``slothlab data`` (and, through it, the TUI's Configure screen). Each example is cut
into parts at the edges between trained and untrained tokens; a part's text is the stretch of
the rendered conversation its tokens cover (special tokens the tokenizer adds by itself, such
as BOS, are shown by name), so the parts put together give the text the model reads.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from recipes.data.render import Renderer, adds_only_bos
from recipes.data.types import IGNORE_INDEX, Example, Loaded, PreparedData, Tokenized
from recipes.schema import Recipe


def token_parts(renderer: Renderer, example: Example, item: Tokenized) -> list[dict[str, Any]]:
    """The example's text in runs of trained / untrained tokens (as far as ``item`` goes)."""
    tok = renderer.tokenizer
    text, _ = renderer.render(example)
    special = adds_only_bos(tok) and not text.startswith(tok.bos_token or "\0")
    enc = tok(text, add_special_tokens=special, return_offsets_mapping=True)
    n = len(item.input_ids)
    ids, offsets = enc["input_ids"][:n], enc["offset_mapping"][:n]
    trained = item.labels != IGNORE_INDEX
    pieces: list[str] = []
    following: int | None = None  # where the next token with text starts
    for i in range(len(offsets) - 1, -1, -1):
        start, end = offsets[i]
        if end <= start:  # added by the tokenizer, not in the text
            pieces.append(tok.convert_ids_to_tokens(int(ids[i])))
            continue
        pieces.append(text[start:following if following is not None else end])
        following = start
    return _runs(pieces[::-1], trained)


def packed_parts(tokenizer: Any, item: Tokenized) -> list[dict[str, Any]]:
    """A plain-text block: one trained part (every token is a target)."""
    return [{"text": tokenizer.decode(item.input_ids.tolist()), "trained": True,
             "tokens": len(item.input_ids)}]


def _runs(pieces: list[str], trained: np.ndarray) -> list[dict[str, Any]]:
    parts: list[dict[str, Any]] = []
    for piece, flag in zip(pieces, trained.tolist(), strict=True):
        if parts and parts[-1]["trained"] == flag:
            parts[-1]["text"] += piece
            parts[-1]["tokens"] += 1
        else:
            parts.append({"text": piece, "trained": bool(flag), "tokens": 1})
    return parts


def describe(loaded: Loaded, prepared: PreparedData, tokenizer: Any, recipe: Recipe,
             n: int = 3) -> dict[str, Any]:
    """The preflight figures and the first ``n`` training examples (by row), JSON-able."""
    stats = prepared.stats
    locate = loaded.locate
    by_row = {ex.row: ex for ex in prepared.splits.train}
    text = loaded.layout == "text"
    # Blocks of plain text in training order; examples by their row in the file.
    items = prepared.train[:n] if text else sorted(
        {t.row: t for t in prepared.train}.values(), key=lambda t: t.row)[:n]
    renderer = None if text else Renderer(tokenizer, recipe)
    examples = []
    for item in items:
        parts = (packed_parts(tokenizer, item) if renderer is None
                 else token_parts(renderer, by_row[item.row], item))
        examples.append({
            "row": item.row, "where": locate(item.row)[1] if locate else f"row {item.row}",
            "tokens": len(item.input_ids), "trained_tokens": item.trained,
            "truncated": item.truncated, "parts": parts})
    preflight = {
        "rows": loaded.n_rows, "examples": len(loaded.examples),
        "splits": prepared.splits.sizes(),
        "items": {"train": len(prepared.train), "val": len(prepared.val)},
        "skipped": loaded.skipped, "max_seq_length": recipe.max_seq_length,
        **{k: stats[k] for k in ("tokens_min", "tokens_median", "tokens_max", "tokens_total",
                                 "trained_token_share", "truncated", "dropped", "overlap",
                                 "task_shares") if k in stats},
    }
    if "packed" in stats:
        preflight["packed"] = stats["packed"]
    return {"layout": loaded.layout, "columns": loaded.columns,
            "tool_rendering": None if renderer is None else
            ("chat template" if renderer.native_tools else "text"),
            "preflight": preflight, "notes": prepared.notes, "examples": examples}
