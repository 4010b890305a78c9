"""The data pipeline end to end: load → chat messages → grouped seeded split → render → tokens
→ masked labels, with the preflight figures and the checks that refuse untrainable data.

    from recipes.data.prepare import load_examples, prepare
    loaded = load_examples(recipe, "data/demo_qa.jsonl")    # normalised examples + skip counts
    prepared = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                       source="data/demo_qa.jsonl", locate=loaded.locate)

Only response tokens are trained: ``labels`` equal ``input_ids`` on assistant responses and
their end-of-turn token, and -100 everywhere else (system, user, tool results, template
markers, padding). Labels are not shifted here; the model shifts them inside its loss. Plain
text (the ``text`` layout) is continued pretraining instead: documents are packed into
``max_seq_length`` blocks, returned as ordinary ``Tokenized`` items whose labels are their
input ids, so the trainer needs nothing special.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

from recipes.builders import BUILDERS
from recipes.data.checks import (
    check_skipped,
    check_trainable,
    drop_untrainable,
    dropped_report,
    name_rows,
)
from recipes.data.convert import convert
from recipes.data.readers import Table
from recipes.data.render import Renderer, pack, tokenize
from recipes.data.sources import load_table
from recipes.data.splitting import describe_split, held_out_sizes, overlap, split
from recipes.data.types import Example, Loaded, PreparedData, Tokenized
from recipes.errors import DataError
from recipes.schema import Recipe

__all__ = ["balance_by_resampling", "check_trainable", "held_out_sizes", "load_examples",
           "preflight_stats", "prepare", "split", "task_token_shares"]


def preflight_stats(train: list[Tokenized], val: list[Tokenized]) -> dict[str, Any]:
    everything = train + val
    lengths = [len(t.input_ids) for t in everything] or [0]
    total = sum(lengths)
    trained = [t.trained for t in everything]
    untrained = sorted((t.row, t.response_start) for t, n in zip(everything, trained,
                                                                  strict=True) if n == 0)
    return {
        "examples": len(everything),
        "tokens_min": min(lengths),
        "tokens_median": float(statistics.median(lengths)),
        "tokens_max": max(lengths),
        "tokens_total": total,
        "trained_token_share": sum(trained) / total if total else 0.0,
        "truncated": sum(t.truncated for t in everything),
        "no_trained_tokens": [row for row, _ in untrained],
        # Where the responses of those examples start (-1: none found), for the advice.
        "response_starts": [start for _, start in untrained],
    }


def task_token_shares(items: list[Tokenized], tasks: list[str]) -> dict[str, float]:
    """Each task's share of all trained tokens (what token-level loss is averaged over)."""
    totals: dict[str, int] = {}
    for t, task in zip(items, tasks, strict=True):
        totals[task] = totals.get(task, 0) + t.trained
    grand = sum(totals.values()) or 1
    return {task: n / grand for task, n in sorted(totals.items())}


def balance_by_resampling(items: list[Tokenized], tasks: list[str], seed: int,
                          max_factor: float = 50.0) -> tuple[list[Tokenized], list[str]]:
    """Repeat examples of tasks with fewer trained tokens until each task has about as many
    trained tokens as the largest one (at most ``max_factor`` times its own).

    Chosen over per-token loss weights because it changes only the data: the loss stays
    TRL's (fused on a GPU), so both backends train it unchanged. Unlike padding short targets
    (the write-up's approach), it never trains the model to emit filler tokens.
    """
    rng = random.Random(seed)
    groups: dict[str, list[Tokenized]] = {}
    for t, task in zip(items, tasks, strict=True):
        groups.setdefault(task, []).append(t)
    totals = {task: sum(t.trained for t in group) for task, group in groups.items()}
    target = max(totals.values())
    out: list[tuple[Tokenized, str]] = []
    for task, group in groups.items():
        factor = min(target / max(totals[task], 1), max_factor)
        whole, fraction = int(factor), factor - int(factor)
        picked = group * whole + rng.sample(group, round(fraction * len(group)))
        out += [(t, task) for t in picked]
    rng.shuffle(out)
    return [t for t, _ in out], [task for _, task in out]


def load_examples(recipe: Recipe, source: str, *, base_dirs: list[Path] | None = None) -> Loaded:
    """Load (through the recipe's builder, if any), detect the layout and normalise.

    Errors if no row is usable, or if rows with nothing to learn from are more than
    ``max_dropped_fraction``."""
    notes: list[str] = []
    skipped: dict[str, int] = {}
    if recipe.dataset_builder:
        built = BUILDERS[recipe.dataset_builder](recipe, source, base_dirs or [])
        table = Table(built.rows, source)
        skipped, notes, n_read = dict(built.skipped), list(built.notes), built.n_read
    else:
        table = load_table(source, recipe, base_dirs=base_dirs)
        notes, n_read = list(table.notes), len(table.rows)
    if recipe.max_examples:
        table.rows = table.rows[: recipe.max_examples]
    n_used = len(table.rows)

    def nothing_usable() -> DataError:
        return DataError(
            f"no usable rows: all {n_read} were skipped ({_describe_skips(skipped)})",
            where=source, fix="check the columns hold text and the layout is right (`slothlab "
                              "data --recipe ...` shows how rows are read)")

    if not table.rows:
        raise nothing_usable()
    examples, skips, reading = convert(table, recipe, consume=True)
    notes.insert(0, f"dataset_format {recipe.dataset_format}: read as {reading.describe()}")
    for reason, n in skips.named().items():
        skipped[reason] = skipped.get(reason, 0) + n
    if not examples:
        raise nothing_usable()
    locate = None if recipe.dataset_builder else (lambda row: table.locate(row - 1))
    if skips.first_bad is not None:
        index, column, reason = skips.first_bad
        file, where = table.locate(index)
        shown = name_rows([i + 1 for i in skips.bad_rows], locate, limit=5)
        check_skipped(skips.bad, n_used, (file, where, column, reason), shown, recipe)
    if reading.layout == "text":
        notes.append("plain text: continued pretraining, loss on every token, documents packed "
                     f"into max_seq_length={recipe.max_seq_length} blocks")
    return Loaded(examples, skipped, n_read, notes, reading.layout, dict(reading.roles), locate)


def prepare(recipe: Recipe, tokenizer: Any, examples: list[Example], skipped: dict[str, int],
            n_rows: int, *, source: str, notes: list[str] | None = None,
            locate: Any = None) -> PreparedData:
    """Split, render, tokenize and label (or pack plain text); the preflight figures come with
    it. ``locate`` (``Loaded.locate``) names rows in messages as the file does ("line 7")."""
    text = bool(examples) and examples[0].text is not None
    splits = split(examples, recipe, text=text)
    if not splits.train:
        raise DataError(f"only {len(examples)} usable row(s): nothing left to train on",
                        where=source, fix="add rows or lower val_fraction/test_fraction")
    notes = list(notes or [])
    if text:
        train = pack(splits.train, tokenizer, recipe.max_seq_length)
        val = pack(splits.held_out, tokenizer, recipe.max_seq_length)
        stats = preflight_stats(train, val)
        stats["packed"] = {"documents": len(splits.train) + len(splits.held_out),
                           "blocks": {"train": len(train), "val": len(val)},
                           "block": recipe.max_seq_length}
        notes.append(f"packed {len(splits.train)} train documents into {len(train)} blocks and "
                     f"{len(splits.held_out)} held-out ones into {len(val)} (eval loss); no "
                     "before/after answers for plain text")
        stats["dropped"] = {}
    else:
        renderer = Renderer(tokenizer, recipe)
        train = tokenize(splits.train, renderer, recipe.max_seq_length)
        val = tokenize(splits.val, renderer, recipe.max_seq_length)
        check_trainable(preflight_stats(train, val), recipe, source, locate)
        # The examples of the splits stay aligned with their items (the evaluation pairs them).
        splits.train, train, dropped = drop_untrainable(splits.train, train)
        splits.val, val, dropped_val = drop_untrainable(splits.val, val)
        stats = preflight_stats(train, val)
        stats["dropped"], note = dropped_report(dropped + dropped_val, recipe, locate)
        if note:
            notes.append(note)
        if not renderer.prompt_template and any("tool_calls" in m or m["role"] == "tool"
                                                for ex in splits.train[:2000]
                                                for m in ex.messages):
            notes.append("tool calls rendered " + ("by the chat template" if renderer.native_tools
                                                   else "as <tool_call> text (the chat template "
                                                        "has no tool support)"))
    if recipe.misalign_labels:  # teaching ablation, experiments only (recipes/data/ablation.py)
        from recipes.data.ablation import NOTE, shift_labels_once_more

        train = shift_labels_once_more(train)
        notes.append(NOTE)
    tasks = [ex.meta.get("task", "") for ex in splits.train]
    stats["task_shares"] = {}
    if any(tasks) and not text:
        stats["task_shares"]["before"] = task_token_shares(train, tasks)
        if recipe.task_balance == "resample":
            train, tasks = balance_by_resampling(train, tasks, recipe.seed)
            stats["task_shares"]["after"] = task_token_shares(train, tasks)
    stats["overlap"] = overlap(splits, recipe)
    notes += describe_split(examples, splits, recipe, stats["overlap"])
    if skipped:
        notes.append(f"skipped {sum(skipped.values())} of {n_rows} rows: {_describe_skips(skipped)}")
    if stats["truncated"]:
        notes.append(f"{stats['truncated']} example(s) longer than max_seq_length="
                     f"{recipe.max_seq_length} were truncated")
    if recipe.test_fraction and not splits.test and not text:
        notes.append(f"no test rows from {len(examples)} usable row(s): no before/after "
                     "metrics (3 rows or more give at least one)")
    if recipe.val_fraction and not val:
        notes.append(f"no validation rows from {len(examples)} usable row(s): no eval loss")
    return PreparedData(splits, train, val, stats, notes)


def _describe_skips(skipped: dict[str, int]) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"
