"""The data pipeline end to end: load → chat messages → seeded split → render → tokens →
masked labels, with the preflight figures and the checks that refuse untrainable data.

    from recipes.data.prepare import load_examples, prepare
    loaded = load_examples(recipe, "data/demo_qa.jsonl")    # normalised examples + skip counts
    prepared = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                       source="data/demo_qa.jsonl")       # tokenized splits + preflight stats

Only response tokens are trained: ``labels`` equal ``input_ids`` on assistant responses and
their end-of-turn token, and -100 everywhere else (system, user, template markers, padding).
Labels are not shifted here; the model shifts them inside its loss.
"""

from __future__ import annotations

import random
import statistics
from pathlib import Path
from typing import Any

from recipes.builders import BUILDERS
from recipes.data.layouts import detect_format, normalise
from recipes.data.render import Renderer, tokenize
from recipes.data.sources import load_rows
from recipes.data.types import Example, Loaded, PreparedData, Splits, Tokenized
from recipes.errors import DataError
from recipes.schema import Recipe


def held_out_sizes(n: int, recipe: Recipe) -> tuple[int, int]:
    """(test, validation) sizes for ``n`` rows: the fractions rounded, at least one each from 3."""
    n_test = round(n * recipe.test_fraction) if recipe.test_fraction else 0
    n_val = round(n * recipe.val_fraction) if recipe.val_fraction else 0
    if recipe.test_fraction and n_test == 0 and n >= 3:
        n_test = 1
    if recipe.val_fraction and n_val == 0 and n >= 3:
        n_val = 1
    return n_test, n_val


def split(examples: list[Example], recipe: Recipe) -> Splits:
    """Seeded shuffle, then test, validation and train slices (same seed = same split)."""
    order = list(range(len(examples)))
    random.Random(recipe.seed).shuffle(order)
    n_test, n_val = held_out_sizes(len(order), recipe)
    pick = [examples[i] for i in order]
    return Splits(train=pick[n_test + n_val:], val=pick[n_test:n_test + n_val], test=pick[:n_test])


# ------------------------------------------------------------------------------ preflight

def preflight_stats(train: list[Tokenized], val: list[Tokenized]) -> dict[str, Any]:
    everything = train + val
    lengths = [len(t.input_ids) for t in everything] or [0]
    total = sum(lengths)
    trained = sum(t.trained for t in everything)
    return {
        "tokens_min": min(lengths),
        "tokens_median": float(statistics.median(lengths)),
        "tokens_max": max(lengths),
        "trained_token_share": trained / total if total else 0.0,
        "truncated": sum(t.truncated for t in everything),
        "no_trained_tokens": sorted(t.row for t in everything if t.trained == 0),
        # Where the responses of those examples start (-1: none found), for the advice.
        "response_starts": [t.response_start for t in everything if t.trained == 0],
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


def check_trainable(stats: dict[str, Any], recipe: Recipe, source: str) -> None:
    rows = stats["no_trained_tokens"]
    if not rows:
        return
    shown = ", ".join(str(r) for r in rows[:8]) + (" ..." if len(rows) > 8 else "")
    starts = stats.get("response_starts", [])
    cut = [s for s in starts if s >= 0]
    if cut and len(cut) == len(starts):
        need = -(-(max(cut) + 16) // 64) * 64  # the latest response start, some of it, rounded
        fix = (f"their responses start after max_seq_length={recipe.max_seq_length} tokens: "
               f"raise it (--set max_seq_length={need} keeps at least 16 response tokens of "
               f"every example), or drop long prompts with max_chars")
    elif cut:
        fix = (f"{len(cut)} start after max_seq_length={recipe.max_seq_length} tokens (raise it); "
               f"in {len(starts) - len(cut)} no response was found: check that chat_template / "
               "prompt_template match the model")
    else:
        fix = ("no response was found in them: check that chat_template / prompt_template "
               "match the model")
    raise DataError(
        f"{len(rows)} example(s) have no trained token after masking (rows {shown})",
        where=source, fix=fix)


def load_examples(recipe: Recipe, source: str, *, base_dirs: list[Path] | None = None) -> Loaded:
    """Load (through the recipe's builder, if any) and normalise. Errors if no row is usable."""
    notes: list[str] = []
    skipped: dict[str, int] = {}
    if recipe.dataset_builder:
        built = BUILDERS[recipe.dataset_builder](recipe, source, base_dirs or [])
        rows, skipped, notes, n_read = built.rows, built.skipped, built.notes, built.n_read
    else:
        rows = load_rows(source, recipe, base_dirs=base_dirs)
        n_read = len(rows)
    if recipe.max_examples:
        rows = rows[: recipe.max_examples]

    def nothing_usable() -> DataError:
        return DataError(
            f"no usable rows: all {n_read} were skipped ({_describe_skips(skipped)})",
            where=source, fix="check the columns hold text and the format is right",
        )

    if not rows:
        raise nothing_usable()
    fmt = recipe.dataset_format
    if fmt == "auto":
        fmt = detect_format(rows, recipe, source)
        notes.append(f"dataset_format auto: read as {fmt}")
    examples, more = normalise(rows, recipe, source, fmt)
    for reason, n in more.items():
        skipped[reason] = skipped.get(reason, 0) + n
    if not examples:
        raise nothing_usable()
    return Loaded(examples, skipped, n_read, notes)


def prepare(recipe: Recipe, tokenizer: Any, examples: list[Example], skipped: dict[str, int],
            n_rows: int, *, source: str, notes: list[str] | None = None) -> PreparedData:
    """Split, render, tokenize and label; the preflight figures come with it."""
    splits = split(examples, recipe)
    if not splits.train:
        raise DataError(f"only {len(examples)} usable row(s): nothing left to train on",
                        where=source, fix="add rows or lower val_fraction/test_fraction")
    renderer = Renderer(tokenizer, recipe)
    train = tokenize(splits.train, renderer, recipe.max_seq_length)
    val = tokenize(splits.val, renderer, recipe.max_seq_length)
    stats = preflight_stats(train, val)
    check_trainable(stats, recipe, source)
    if recipe.misalign_labels:  # teaching ablation, experiments only (recipes/data/ablation.py)
        from recipes.data.ablation import NOTE, shift_labels_once_more

        train, notes = shift_labels_once_more(train), [*(notes or []), NOTE]
    tasks = [ex.meta.get("task", "") for ex in splits.train]
    stats["task_shares"] = {}
    if any(tasks):
        stats["task_shares"]["before"] = task_token_shares(train, tasks)
        if recipe.task_balance == "resample":
            train, tasks = balance_by_resampling(train, tasks, recipe.seed)
            stats["task_shares"]["after"] = task_token_shares(train, tasks)
    notes = list(notes or [])
    if skipped:
        notes.append(f"skipped {sum(skipped.values())} of {n_rows} rows: {_describe_skips(skipped)}")
    if stats["truncated"]:
        notes.append(f"{stats['truncated']} example(s) longer than max_seq_length="
                     f"{recipe.max_seq_length} were truncated")
    if recipe.test_fraction and not splits.test:
        notes.append(f"no test rows from {len(examples)} usable row(s): no before/after "
                     "metrics (3 rows or more give at least one)")
    if recipe.val_fraction and not splits.val:
        notes.append(f"no validation rows from {len(examples)} usable row(s): no eval loss")
    return PreparedData(splits, train, val, stats, notes)


def _describe_skips(skipped: dict[str, int]) -> str:
    return "; ".join(f"{n} {reason}" for reason, n in skipped.items()) or "none"
