"""Splits without leakage: rows that share a source sentence (or a split_by value) stay in one
split, and the preflight reports what test prompts and references still appear in train."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from recipes.data.prepare import load_examples, prepare, split
from recipes.data.splitting import describe_split, overlap
from recipes.host import PROJECT_ROOT
from recipes.registry import find_recipe
from recipes.schema import Recipe, data_source, load_recipe
from tests.layout_files import write_rows


def saudial():
    recipe = load_recipe(find_recipe("saudial-lfm2"), overrides=["tiny=true"])
    return recipe, load_examples(recipe, data_source(recipe), base_dirs=[PROJECT_ROOT])


def english(examples) -> set[str]:
    return {ex.fields["input"] for ex in examples}


def test_saudial_sentences_never_straddle_splits() -> None:
    recipe, data = saudial()
    assert recipe.split_by == "input"
    sentences = english(data.examples)
    assert len(sentences) < len(data.examples) / 2, "the sample repeats each sentence"
    splits = split(data.examples, recipe)
    train, val, test = (english(getattr(splits, s)) for s in ("train", "val", "test"))
    assert test and val and not (train & test) and not (train & val) and not (val & test)
    found = overlap(splits, recipe)
    assert found["prompts"] == 0 and found["references"] == 0
    notes = describe_split(data.examples, splits, recipe, found)
    assert notes[0].startswith(f"split by split_by 'input': {len(data.examples)} rows in "
                               f"{len(sentences)} groups")
    assert notes[1].startswith("no test prompt or reference appears in train")


def test_a_row_wise_split_leaks_and_the_report_says_so() -> None:
    recipe, data = saudial()
    by_row = [dataclasses.replace(ex, group=f"row {ex.row}") for ex in data.examples]
    splits = split(by_row, recipe)
    found = overlap(splits, recipe)
    assert found["prompts"] == len(splits.test) > 0, "every test sentence was also trained on"
    assert found["references"] > 0
    [note] = [n for n in describe_split(by_row, splits, recipe, found) if "overlap" in n]
    assert f"{found['prompts']} test prompt(s) also in train (e.g. " in note
    assert note.endswith("group such rows with split_by")


def test_the_preflight_reports_the_grouping(tiny_llama_tokenizer) -> None:
    recipe, data = saudial()
    prepared = prepare(recipe, tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                       source="saudial")
    assert prepared.stats["overlap"]["prompts"] == 0
    assert any(n.startswith("split by split_by 'input'") for n in prepared.notes)


def test_by_default_rows_sharing_a_question_share_a_split(tmp_path: Path) -> None:
    rows = [{"question": f"Question {i % 10}?", "answer": f"Answer {i}."} for i in range(40)]
    path = write_rows(tmp_path / "qa.jsonl", rows)
    recipe = Recipe(test_fraction=0.2, val_fraction=0.1)
    splits = split(load_examples(recipe, str(path)).examples, recipe)
    asked = [{ex.fields["instruction"] for ex in getattr(splits, s)} for s in ("train", "val",
                                                                              "test")]
    assert asked[2] and not (asked[0] & asked[2]) and not (asked[1] & asked[2])


def test_split_by_names_any_column(tmp_path: Path) -> None:
    rows = [{"question": f"Q{i}?", "answer": f"A{i}.", "doc": f"doc-{i // 4}"}
            for i in range(40)]
    path = write_rows(tmp_path / "qa.jsonl", rows)
    recipe = Recipe(split_by="doc", test_fraction=0.2)
    splits = split(load_examples(recipe, str(path)).examples, recipe)
    doc_of = {f"Q{i}?": f"doc-{i // 4}" for i in range(40)}
    docs = [{doc_of[ex.fields["instruction"]] for ex in getattr(splits, s)}
            for s in ("train", "test")]
    assert docs[1] and not (docs[0] & docs[1])
