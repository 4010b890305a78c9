"""Seeded train / validation / test splits made by group, and the leakage check after them.

Rows that share a group land in the same split: the recipe's ``split_by`` column when it names
one, otherwise the prompt's source text (a pair's ``input`` when it has one, else its
instruction; a conversation's last user turn before the answer; a document's text), compared
without case. So one English sentence given with several contexts or dialects (SauDial), or
one question asked twice, cannot be trained on and then tested. Groups are shuffled with the
recipe's seed and dealt to test, then validation, then train (the same seed gives the same
split; with every group a single row it is the plain seeded row split).

``overlap`` then reports what still appears in both train and test: the prompts' source texts
and the references (answers), with a count and examples.
"""

from __future__ import annotations

import random
from typing import Any

from recipes.data.types import Example, Splits
from recipes.schema import Recipe

SHOWN = 3


def held_out_sizes(n: int, recipe: Recipe) -> tuple[int, int]:
    """(test, validation) sizes for ``n`` rows: the fractions rounded, at least one each from 3."""
    n_test = round(n * recipe.test_fraction) if recipe.test_fraction else 0
    n_val = round(n * recipe.val_fraction) if recipe.val_fraction else 0
    if recipe.test_fraction and n_test == 0 and n >= 3:
        n_test = 1
    if recipe.val_fraction and n_val == 0 and n >= 3:
        n_val = 1
    return n_test, n_val


def source_text(example: Example) -> str:
    """What the model is asked about: a pair's input (else instruction), a conversation's last
    user turn before its last answer, a document's text."""
    if example.text is not None:
        return example.text
    if example.fields is not None:
        return example.fields.get("input") or example.fields.get("instruction", "")
    answered = False
    for message in reversed(example.messages):
        if message["role"] == "assistant":
            answered = True
        elif message["role"] == "user" and answered:
            return message["content"]
    return ""


def reference(example: Example) -> str:
    """The answer a test example is scored against: its last assistant turn's text."""
    for message in reversed(example.messages):
        if message["role"] == "assistant":
            return message["content"]
    return ""


def group_key(example: Example) -> str:
    return example.group or source_text(example).casefold()


def split(examples: list[Example], recipe: Recipe, *, text: bool = False) -> Splits:
    """Seeded split by group (see the module docstring). Plain text (``text``) has no test
    split: its held-out documents (val_fraction + test_fraction) are ``held_out``."""
    n_test, n_val = held_out_sizes(len(examples), recipe)
    if text:
        n_test, n_val = 0, n_test + n_val
    rng = random.Random(recipe.seed)
    if not n_test and not n_val:
        order = list(range(len(examples)))
        rng.shuffle(order)
        return Splits(train=[examples[i] for i in order], val=[], test=[])
    groups: dict[str, list[int]] = {}
    for i, ex in enumerate(examples):
        key = group_key(ex)
        groups.setdefault(key if key else f"\0{i}", []).append(i)
    order = list(groups.values())
    rng.shuffle(order)
    test: list[int] = []
    val: list[int] = []
    train: list[int] = []
    for members in order:
        target = test if len(test) < n_test else val if len(val) < n_val else train
        target.extend(members)
    pick = lambda idx: [examples[i] for i in idx]  # noqa: E731
    if text:
        return Splits(train=pick(train), val=[], test=[], held_out=pick(val))
    return Splits(train=pick(train), val=pick(val), test=pick(test))


def overlap(splits: Splits, recipe: Recipe) -> dict[str, Any]:
    """Test prompts (source texts) and references also found in train, counted with examples.

    Classification tasks (their answers are a few labels) are left out of the reference count.
    """
    if not splits.test:
        return {}
    scored = [ex for ex in splits.test if ex.meta.get("task", "") not in
              recipe.classification_tasks]
    train_src = {source_text(ex).casefold() for ex in splits.train}
    train_ref = {reference(ex).casefold() for ex in splits.train
                 if ex.meta.get("task", "") not in recipe.classification_tasks}
    prompts = [source_text(ex) for ex in splits.test
               if source_text(ex) and source_text(ex).casefold() in train_src]
    refs = [reference(ex) for ex in scored if reference(ex) and reference(ex).casefold() in
            train_ref]
    return {"test": len(splits.test), "prompts": len(prompts), "references": len(refs),
            "prompt_examples": [_short(p) for p in prompts[:SHOWN]],
            "reference_examples": [_short(r) for r in refs[:SHOWN]]}


def describe_split(examples: list[Example], splits: Splits, recipe: Recipe,
                   found: dict[str, Any]) -> list[str]:
    """Preflight notes: how rows were grouped, and any leakage left."""
    notes = []
    if splits.test or splits.val or splits.held_out:
        by = f"split_by '{recipe.split_by}'" if recipe.split_by else "the prompt's source text"
        n_groups = len({group_key(ex) or f"\0{i}" for i, ex in enumerate(examples)})
        if n_groups < len(examples):
            sizes = splits.sizes()
            notes.append(f"split by {by}: {len(examples)} rows in {n_groups} groups, each in one "
                         f"split (train {sizes['train']}, val {sizes['val']}, test "
                         f"{sizes['test']})")
    if found:
        parts = []
        if found["prompts"]:
            parts.append(f"{found['prompts']} test prompt(s) also in train (e.g. "
                         f"{found['prompt_examples'][0]!r})")
        if found["references"]:
            parts.append(f"{found['references']} test reference(s) also in train (e.g. "
                         f"{found['reference_examples'][0]!r})")
        if parts:
            notes.append(f"overlap of {found['test']} test examples with train: "
                         + "; ".join(parts) + " — group such rows with split_by")
        else:
            notes.append(f"no test prompt or reference appears in train ({found['test']} "
                         "test examples)")
    return notes


def _short(text: str, limit: int = 60) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit - 1] + "…"
