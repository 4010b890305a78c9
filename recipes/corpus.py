"""gemma3-scratch's corpus: sentences sampled per language in the recipe's ratios, split once.

    from recipes.corpus import load_corpus
    corpus = load_corpus(recipe)     # Corpus(train, val, test, sampled, available, notes)

The tokenizer, pretraining and fine-tuning stages read the same sample and split, so held-out
sentences never reach training; a resumed run must read the same sample (``check_same``).
"""

from __future__ import annotations

import hashlib
import json
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

from recipes.data.prepare import held_out_sizes
from recipes.data.sources import load_rows
from recipes.errors import DataError, RecipeError, RunDirError
from recipes.host import PROJECT_ROOT
from recipes.rundir import read_done, stage_folder
from recipes.schema import Recipe, data_source


@dataclass
class Corpus:
    """The sampled sentences as (lang, text), split per language; the same for every stage."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    sampled: dict[str, int]  # sentences sampled per language
    available: dict[str, int]  # usable sentences per language in the source
    notes: list[str] = field(default_factory=list)

    def held_out(self) -> list[tuple[str, str]]:
        return self.val + self.test

    def fingerprint(self) -> str:
        """Changes when the sample or its split does (another corpus, seed or ratio)."""
        payload = json.dumps([self.train, self.val, self.test], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def parse_ratios(recipe: Recipe) -> dict[str, float]:
    """``[as=0.5, hi=0.3, en=0.2]`` -> {"as": 0.5, "hi": 0.3, "en": 0.2}, normalised to sum 1."""
    ratios: dict[str, float] = {}
    for item in recipe.language_ratios:
        lang, sep, weight = item.partition("=")
        try:
            value = float(weight) if sep else -1.0
        except ValueError:
            value = -1.0
        if not lang.strip() or value <= 0 or lang.strip() in ratios:
            raise RecipeError(f"language_ratios entry {item!r} is not lang=weight (weight > 0, "
                              "each language once)", where="language_ratios",
                              fix="write e.g. [as=0.5, hi=0.3, en=0.2]")
        ratios[lang.strip()] = value
    total = sum(ratios.values())
    return {lang: w / total for lang, w in ratios.items()}


def load_corpus(recipe: Recipe) -> Corpus:
    """Read the corpus, sample it in the language ratios (seeded) and split it per language."""
    source = data_source(recipe)
    rows = load_rows(source, recipe, base_dirs=[PROJECT_ROOT])
    if recipe.max_examples:
        rows = rows[:recipe.max_examples]
    text_col, lang_col = recipe.columns.get("text", "text"), recipe.columns.get("lang", "lang")
    missing = [c for c in (text_col, lang_col) if c not in rows[0]]
    if missing:
        raise DataError(
            f"the corpus needs column(s) {', '.join(repr(c) for c in missing)}; it has "
            f"{', '.join(repr(c) for c in rows[0])}", where=source,
            fix="one sentence per row with its language code; map other names with e.g. "
                "--set columns={text: sentence, lang: language}")
    by_lang: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        text = " ".join(str(row.get(text_col) or "").split())  # a sentence is one line
        lang = str(row.get(lang_col) or "").strip()
        if text and lang and (lang, text) not in seen:
            seen.add((lang, text))
            by_lang.setdefault(lang, []).append(text)
    ratios = parse_ratios(recipe) or {lang: len(t) / len(seen) for lang, t in by_lang.items()}
    absent = [lang for lang in ratios if not by_lang.get(lang)]
    if absent:
        raise DataError(f"the corpus has no sentence in language(s) {', '.join(absent)}; it has "
                        f"{', '.join(f'{k} ({len(v)})' for k, v in sorted(by_lang.items()))}",
                        where=source, fix="fix language_ratios or the corpus's lang column")
    counts, notes = sample_counts({lang: len(by_lang[lang]) for lang in ratios}, ratios,
                                  recipe.corpus_sentences)
    dropped = sorted(set(by_lang) - set(ratios))
    if dropped:
        notes.append(f"languages not in language_ratios left out: {', '.join(dropped)}")
    rng = random.Random(recipe.seed)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for lang in ratios:  # split per language, so every language is held out in proportion
        picked = rng.sample(by_lang[lang], counts[lang])
        n_test, n_val = held_out_sizes(len(picked), recipe)
        test += [(lang, t) for t in picked[:n_test]]
        val += [(lang, t) for t in picked[n_test:n_test + n_val]]
        train += [(lang, t) for t in picked[n_test + n_val:]]
    rng.shuffle(train)
    return Corpus(train, val, test, counts, {k: len(by_lang[k]) for k in ratios}, notes)


def sample_counts(available: dict[str, int], ratios: dict[str, float],
                  wanted: int) -> tuple[dict[str, int], list[str]]:
    """Sentences per language: ``wanted`` in total, split in ``ratios`` (largest remainder).

    A language with too few sentences caps the total, so the ratios always hold; 0 = the
    largest total the ratios allow.
    """
    largest = min(math.floor(available[lang] / r + 1e-9) for lang, r in ratios.items())
    total = largest if not wanted else min(wanted, largest)
    notes = []
    if wanted and total < wanted:
        short = min(ratios, key=lambda lang: available[lang] / ratios[lang])
        notes.append(f"corpus_sentences={wanted} asked, {total} sampled: '{short}' has only "
                     f"{available[short]} sentences for its {ratios[short]:.0%} share")
    exact = {lang: r * total for lang, r in ratios.items()}
    counts = {lang: min(int(x), available[lang]) for lang, x in exact.items()}
    by_remainder = sorted(ratios, key=lambda lang: exact[lang] - int(exact[lang]), reverse=True)
    for lang in by_remainder[:total - sum(counts.values())]:
        counts[lang] = min(counts[lang] + 1, available[lang])
    return counts, notes


def check_same_corpus(run_dir: Path, recipe: Recipe, corpus: Corpus) -> None:
    """A resumed run must read the sentences its finished stages read (held-out ones
    included), or validation sentences could leak into training."""
    for stage in recipe.stages:
        done = read_done(stage_folder(run_dir, stage, staged=True))
        if done and done.get("corpus") not in (None, corpus.fingerprint()):
            raise RunDirError(
                f"the corpus sample differs from the one the {stage} stage used",
                where=str(run_dir), fix="restore the corpus file this run was started with, or "
                                        "start a new run")
