"""Recipe-specific loaders for sources that need more than reading one file.

A recipe names one with ``dataset_builder``; it returns rows in the recipe's ``instruction``
format (instruction / input / response), the rows it skipped by reason, and notes for the
preflight. Plain datasets need none of this.

- ``medqa``: MedQuAD (hub mirror or a Kaggle-layout CSV) merged with AfriMed-QA v2's
  free-text rows; AfriMed-QA is gated, and without access the recipe says so and goes on.
- ``saudial``: a hand-kept SauDial Excel sheet, forgiving about header spelling, column order
  and blank rows, each turned into the write-up's translation prompt.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from recipes.data.sources import clean_text, load_rows, present_columns
from recipes.errors import DataError
from recipes.schema import Recipe, extra_sources


@dataclass
class Built:
    rows: list[dict]
    n_read: int
    skipped: dict[str, int] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1


def _key(header: object) -> str:
    """A header reduced to lower-case letters and single spaces: 'In-Game  Context ' -> 'in game context'."""
    return " ".join(re.sub(r"[^0-9a-z]+", " ", str(header).lower()).split())


def find_columns(rows: list[dict], wanted: dict[str, tuple[str, ...]], source: str,
                 required: tuple[str, ...]) -> dict[str, str]:
    """Map canonical names to the file's headers, whatever their case, spacing or order."""
    headers = {_key(h): h for h in present_columns(rows)}
    found = {}
    for name, spellings in wanted.items():
        for spelling in spellings:
            if spelling in headers:
                found[name] = headers[spelling]
                break
    missing = [n for n in required if n not in found]
    if missing:
        raise DataError(
            f"cannot find column(s) {', '.join(missing)}; the file has "
            f"{', '.join(repr(h) for h in headers.values())}",
            where=source,
            fix="name them " + "; ".join(f"{n}: {' / '.join(wanted[n])}" for n in missing),
        )
    return found


# ------------------------------------------------------------------------------- medqa

MEDQUAD_COLUMNS = {"question": ("question",), "answer": ("answer",)}
AFRIMED_COLUMNS = {"question": ("question",), "answer": ("answer rationale", "rationale"),
                   "type": ("question type",)}
AFRIMED_FREE_TEXT = {"saq", "consumer queries", "consumer_queries"}


def medqa(recipe: Recipe, source: str, base_dirs: list[Path]) -> Built:
    medquad = load_rows(source, recipe, base_dirs=base_dirs)
    cols = find_columns(medquad, MEDQUAD_COLUMNS, source, ("question", "answer"))
    built = Built([], len(medquad))
    for row in medquad:
        built.rows.append({"instruction": clean_text(row.get(cols["question"])),
                           "response": clean_text(row.get(cols["answer"])), "origin": "MedQuAD"})
    extras = extra_sources(recipe)
    if not extras:
        built.notes.append("MedQuAD only (no extra_datasets set)")
        return built
    extra = extras[0]
    try:
        afrimed = load_rows(extra, recipe, base_dirs=base_dirs)
    except DataError as exc:
        built.notes.append(f"AfriMed-QA not loaded ({exc.what}); training on MedQuAD alone — "
                           "request access to the gated dataset and log in with an HF token")
        return built
    cols = find_columns(afrimed, AFRIMED_COLUMNS, extra, ("question", "answer"))
    built.n_read += len(afrimed)
    added = 0
    for row in afrimed:
        kind = _key(row.get(cols["type"], "")) if "type" in cols else ""
        answer = clean_text(row.get(cols["answer"]))
        if kind and kind not in AFRIMED_FREE_TEXT:
            built.skip(f"AfriMed-QA {kind} (not free text)")
            continue
        if not answer:
            built.skip("AfriMed-QA without a free-text answer")
            continue
        built.rows.append({"instruction": clean_text(row.get(cols["question"])), "response": answer,
                           "origin": "AfriMed-QA"})
        added += 1
    built.notes.append(f"merged {len(medquad)} MedQuAD rows with {added} AfriMed-QA free-text rows")
    return built


# ----------------------------------------------------------------------------- saudial

SAUDIAL_COLUMNS = {
    "dialect": ("dialect",),
    "english": ("english text", "english", "english sentence"),
    "translation": ("dialect translation", "translation", "saudi translation"),
    "context": ("in game context", "ingame context", "context", "game context"),
}
SAUDIAL_INSTRUCTION = "Translate the following English text to Saudi Dialect ({dialect})."


def saudial(recipe: Recipe, source: str, base_dirs: list[Path]) -> Built:
    rows = load_rows(source, recipe, base_dirs=base_dirs)
    cols = find_columns(rows, SAUDIAL_COLUMNS, source, ("dialect", "english", "translation"))
    built = Built([], len(rows))
    for row in rows:
        values = {name: clean_text(row.get(header)) for name, header in cols.items()}
        if not any(values.values()):
            built.skip("blank row")
            continue
        if not values["english"] or not values["translation"]:
            built.skip("missing English text or translation")
            continue
        instruction = SAUDIAL_INSTRUCTION.format(dialect=values["dialect"] or "unspecified")
        if values.get("context"):
            instruction += f"\nContext: {values['context']}"
        built.rows.append({"instruction": instruction, "input": values["english"],
                           "response": values["translation"], "dialect": values["dialect"]})
    if "context" not in cols:
        built.notes.append("no in-game context column found; prompts carry no context line")
    return built


# ------------------------------------------------------------------------------ inkuba

INKUBA_COLUMNS = {"instruction": ("instruction",), "inputs": ("inputs", "input text", "input"),
                  "targets": ("targets", "target"), "task": ("task",),
                  "langs": ("langs", "lang", "language")}
LANGUAGES = {"swahili": "swa", "hausa": "hau", "english": "eng"}
TASKS = {"mmt": "mt", "translation": "mt", "afrixnli": "xnli", "sent": "sentiment"}


def _language(value: str) -> str:
    """The target language code: 'eng-swa' -> 'swa', 'hausa' -> 'hau'."""
    last = value.lower().replace("_", "-").split("-")[-1]
    return LANGUAGES.get(last, last)


def inkuba(recipe: Recipe, source: str, base_dirs: list[Path]) -> Built:
    """Buzuzu-Mavi task files (ID, task, langs, instruction, inputs, targets), one per source."""
    built = Built([], 0)
    for src in [source, *extra_sources(recipe)]:
        rows = load_rows(src, recipe, base_dirs=base_dirs)
        cols = find_columns(rows, INKUBA_COLUMNS, src, tuple(INKUBA_COLUMNS))
        built.n_read += len(rows)
        for row in rows:
            target = clean_text(row.get(cols["targets"]))
            if not target:
                built.skip("no target")
                continue
            task = clean_text(row.get(cols["task"])).lower()
            built.rows.append({"instruction": clean_text(row.get(cols["instruction"])),
                               "input": clean_text(row.get(cols["inputs"])), "response": target,
                               "task": TASKS.get(task, task),
                               "langs": _language(clean_text(row.get(cols["langs"])))})
    counts: dict[str, int] = {}
    for row in built.rows:
        key = f"{row['task']}/{row['langs']}"
        counts[key] = counts.get(key, 0) + 1
    built.notes.append("rows per task/language: " + ", ".join(f"{k} {n}" for k, n in
                                                              sorted(counts.items())))
    return built


BUILDERS: dict[str, Callable[[Recipe, str, list[Path]], Built]] = {
    "medqa": medqa, "saudial": saudial, "inkuba": inkuba,
}
