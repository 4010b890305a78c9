"""gemma3-scratch's fine-tuning data: infilling from the corpus and question clarification.

Infilling: random word spans of a corpus sentence replaced by ``<mask>``; the target lists the
spans in order, `` | `` between them. It follows the corpus split, so its test sentences were
never pretrained on. Clarification: rows of {question, clarified_question, lang}. Both become
chat examples tagged with their task, so the loss is on the target only (recipes.data's masking)
and evaluation reports each task.
"""

from __future__ import annotations

import random
from typing import Any

from recipes.corpus import Corpus
from recipes.data.prepare import (
    balance_by_resampling,
    check_trainable,
    preflight_stats,
    split,
    task_token_shares,
)
from recipes.data.render import Renderer, tokenize
from recipes.data.sources import clean_text, load_rows
from recipes.data.types import Example, PreparedData, Splits
from recipes.errors import DataError
from recipes.host import PROJECT_ROOT
from recipes.schema import Recipe, extra_sources
from recipes.stages.tokenizer import MASK

INFILL_PROMPT = "Fill in each {mask}:\n{text}"
CLARIFY_PROMPT = "Clarify the question:\n{text}"
SPAN_SEPARATOR = " | "


def mask_spans(text: str, ratio: float, rng: random.Random,
               mask: str = MASK) -> tuple[str, str] | None:
    """(masked sentence, target): ``ratio`` of the words, in spans of 1-3 words with at least
    one kept word between spans, each span replaced by ``mask``; the target lists the spans
    in order, separated by `` | ``. None for sentences under two words."""
    words = text.split()
    if len(words) < 2:
        return None
    n_mask = max(1, min(len(words) - 1, round(ratio * len(words))))
    lengths: list[int] = []
    while sum(lengths) < n_mask:
        lengths.append(min(rng.randint(1, 3), n_mask - sum(lengths)))
    kept = len(words) - n_mask
    if kept < len(lengths) - 1:  # not enough words to separate the spans: one span
        lengths = [n_mask]
    gaps = [0] * (len(lengths) + 1)
    for _ in range(kept - (len(lengths) - 1)):
        gaps[rng.randrange(len(gaps))] += 1
    for i in range(1, len(lengths)):
        gaps[i] += 1
    out: list[str] = []
    spans: list[str] = []
    pos = 0
    for gap, length in zip(gaps, lengths, strict=False):
        out += words[pos:pos + gap]
        pos += gap
        spans.append(" ".join(words[pos:pos + length]))
        out.append(mask)
        pos += length
    out += words[pos:]
    return " ".join(out), SPAN_SEPARATOR.join(spans)


def _chat_example(row: int, prompt: str, target: str, task: str, lang: str) -> Example:
    return Example(row, [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": target}],
                   meta={"task": task, "lang": lang})


def infilling_examples(sentences: list[tuple[str, str]], ratio: float, seed: int,
                       mask: str = MASK) -> list[Example]:
    """One masked copy of each sentence (seeded: the same masks every run)."""
    rng = random.Random(seed)
    out = []
    for i, (lang, text) in enumerate(sentences, start=1):
        masked = mask_spans(text, ratio, rng, mask)
        if masked is not None:
            out.append(_chat_example(i, INFILL_PROMPT.format(mask=mask, text=masked[0]),
                                     masked[1], "infilling", lang))
    return out


def clarification_examples(recipe: Recipe) -> list[Example]:
    """Rows of {question, clarified_question, lang} as chat examples (columns can be mapped)."""
    sources = extra_sources(recipe)
    if not sources:
        return []
    rows = load_rows(sources[0], recipe, base_dirs=[PROJECT_ROOT])
    cols = {k: recipe.columns.get(k, k) for k in ("question", "clarified_question", "lang")}
    missing = [c for k, c in cols.items() if k != "lang" and c not in rows[0]]
    if missing:
        raise DataError(
            f"clarification pairs need column(s) {', '.join(repr(c) for c in missing)}; the "
            f"file has {', '.join(repr(c) for c in rows[0])}", where=sources[0],
            fix="name them question and clarified_question, or map them with e.g. "
                "--set columns={question: ambiguous, clarified_question: rewrite}")
    out = []
    for i, row in enumerate(rows, start=1):
        question = clean_text(row.get(cols["question"]))
        clarified = clean_text(row.get(cols["clarified_question"]))
        if question and clarified:
            out.append(_chat_example(i, CLARIFY_PROMPT.format(text=question), clarified,
                                     "clarification", clean_text(row.get(cols["lang"]))))
    return out


def interleave(groups: list[list[Any]]) -> list[Any]:
    """Round-robin over ``groups``, so the first few items hold every group."""
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out


def prepare_tasks(recipe: Recipe, tokenizer: Any, corpus: Corpus) -> PreparedData:
    """Both tasks' examples, split, tokenized with only the targets trained."""
    mask = tokenizer.mask_token or MASK
    infill = {name: infilling_examples(sentences, recipe.infill_mask_ratio,
                                       recipe.seed + offset, mask)
              for offset, (name, sentences) in enumerate(
                  (("train", corpus.train), ("val", corpus.val), ("test", corpus.test)))}
    clarify = split(clarification_examples(recipe), recipe)
    train = infill["train"] + clarify.train
    random.Random(recipe.seed).shuffle(train)
    splits = Splits(train=train, val=infill["val"] + clarify.val,
                    test=interleave([infill["test"], clarify.test]))
    renderer = Renderer(tokenizer, recipe)
    train_tok = tokenize(splits.train, renderer, recipe.max_seq_length)
    val_tok = tokenize(splits.val, renderer, recipe.max_seq_length)
    stats = preflight_stats(train_tok, val_tok)
    check_trainable(stats, recipe, "finetune data")
    tasks = [ex.meta["task"] for ex in splits.train]
    stats["task_shares"] = {"before": task_token_shares(train_tok, tasks)}
    if recipe.task_balance == "resample":
        train_tok, tasks = balance_by_resampling(train_tok, tasks, recipe.seed)
        stats["task_shares"]["after"] = task_token_shares(train_tok, tasks)
    notes = [f"{task}: " + ", ".join(f"{name} {sum(ex.meta['task'] == task for ex in part)}"
                                     for name, part in (("train", splits.train),
                                                        ("val", splits.val),
                                                        ("test", splits.test)))
             for task in ("infilling", "clarification")]
    if not extra_sources(recipe):
        notes.append("no clarification pairs (extra_datasets is empty): infilling only")
    if stats["truncated"]:
        notes.append(f"{stats['truncated']} example(s) longer than max_seq_length="
                     f"{recipe.max_seq_length} were truncated")
    return PreparedData(splits, train_tok, val_tok, stats, notes)
