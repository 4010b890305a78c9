"""The data pipeline: loaders, normalisation, seeded split and response-only labels."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.data.convert import normalise
from recipes.data.layouts import detect_format
from recipes.data.prepare import load_examples, preflight_stats, split
from recipes.data.render import Renderer, tokenize
from recipes.data.sources import load_rows
from recipes.data.types import IGNORE_INDEX, Example
from recipes.errors import DataError
from recipes.schema import Recipe

ROOT = Path(__file__).resolve().parents[1]

QA = [
    {"role": "system", "content": "Answer briefly."},
    {"role": "user", "content": "What is the capital of France?"},
    {"role": "assistant", "content": "The capital of France is Paris."},
]


def trained_text(tokenizer, tok) -> str:
    return tokenizer.decode([i for i, lab in zip(tok.input_ids, tok.labels, strict=True)
                             if lab != IGNORE_INDEX])


def first_trained(tok) -> int:
    return next(i for i, lab in enumerate(tok.labels) if lab != IGNORE_INDEX)


# ------------------------------------------------------------------------------ masking


def test_worked_example_zephyr(tiny_llama_tokenizer) -> None:
    """TinyLlama's template: only 'The capital of France is Paris.</s>' is trained."""
    tok = tiny_llama_tokenizer
    renderer = Renderer(tok, Recipe())
    text, spans = renderer.render(Example(1, QA))
    assert text == ("<|system|>\nAnswer briefly.</s>\n<|user|>\nWhat is the capital of France?"
                    "</s>\n<|assistant|>\nThe capital of France is Paris.</s>\n")
    [t] = tokenize([Example(1, QA)], renderer, max_len=128)
    assert t.input_ids[0] == tok.bos_token_id, "Llama tokenizers start with BOS"
    assert trained_text(tok, t) == "The capital of France is Paris.</s>"
    start = first_trained(t)
    # The first response token is trained, the token before it (end of "<|assistant|>\n") is not.
    assert tok.decode(t.input_ids[start:start + 1]) == "The"
    assert t.labels[start - 1] == IGNORE_INDEX
    # The end-of-turn token is trained; labels equal the input ids there (no manual shift).
    eos_positions = [i for i, x in enumerate(t.input_ids) if x == tok.eos_token_id]
    assert t.labels[eos_positions[-1]] == tok.eos_token_id
    assert all(t.labels[i] == IGNORE_INDEX for i in eos_positions[:-1]), "prompt </s> masked"
    assert all(lab in (IGNORE_INDEX, i) for i, lab in zip(t.input_ids, t.labels, strict=True))
    # Nothing after the end-of-turn token (the template's trailing newline) is trained.
    assert all(lab == IGNORE_INDEX for lab in t.labels[eos_positions[-1] + 1:])


def test_worked_example_llama3(tiny_llama3_tokenizer) -> None:
    tok = tiny_llama3_tokenizer
    renderer = Renderer(tok, Recipe())
    [t] = tokenize([Example(1, QA)], renderer, max_len=128)
    assert trained_text(tok, t) == "The capital of France is Paris.<|eot_id|>"
    text = tok.decode(t.input_ids)
    assert text.count("<|begin_of_text|>") == 1, "BOS comes from the template, not twice"
    start = first_trained(t)
    assert tok.decode(t.input_ids[:start]).endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")


def test_multi_turn_trains_every_assistant_turn(tiny_llama_tokenizer) -> None:
    messages = [
        {"role": "user", "content": "What is 2 plus 2?"},
        {"role": "assistant", "content": "2 plus 2 is 4."},
        {"role": "user", "content": "What is 3 plus 3?"},
        {"role": "assistant", "content": "3 plus 3 is 6."},
    ]
    [t] = tokenize([Example(1, messages)], Renderer(tiny_llama_tokenizer, Recipe()), max_len=128)
    assert trained_text(tiny_llama_tokenizer, t) == "2 plus 2 is 4.</s>3 plus 3 is 6.</s>"


def test_prompt_template_masks_the_prompt(tiny_llama_tokenizer) -> None:
    recipe = Recipe(prompt_template="### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n"
                                    "### Response:\n{response}")
    renderer = Renderer(tiny_llama_tokenizer, recipe)
    with_input = Example(1, [], {"instruction": "Translate.", "input": "hello", "response": "hola"})
    without = Example(2, [], {"instruction": "Say hi.", "input": "", "response": "hi"})
    assert renderer.render(with_input)[0] == (
        "### Instruction:\nTranslate.\n\n### Input:\nhello\n\n### Response:\nhola</s>")
    # An empty {input} drops its whole paragraph rather than leaving an empty section.
    assert renderer.render(without)[0] == "### Instruction:\nSay hi.\n\n### Response:\nhi</s>"
    [t] = tokenize([with_input], renderer, max_len=128)
    assert trained_text(tiny_llama_tokenizer, t) == "hola</s>"


def test_truncation_is_counted_and_untrainable_rows_named(tiny_llama_tokenizer) -> None:
    from recipes.data.prepare import check_trainable

    renderer = Renderer(tiny_llama_tokenizer, Recipe())
    long_prompt = [{"role": "user", "content": "word " * 60}, {"role": "assistant", "content": "ok"}]
    short = Example(7, QA)
    toks = tokenize([Example(5, long_prompt), short], renderer, max_len=20)
    assert [t.truncated for t in toks] == [True, True]
    assert all(len(t.input_ids) == 20 for t in toks)
    stats = preflight_stats(toks, [])
    assert stats["truncated"] == 2
    assert stats["no_trained_tokens"] == [5, 7]
    with pytest.raises(DataError) as info:
        check_trainable(stats, Recipe(max_seq_length=20), "data.jsonl")
    assert "rows 5, 7" in info.value.what and "max_seq_length=20" in info.value.what
    # The advice names a length that keeps part of every response, and that length works.
    latest = max(t.response_start for t in toks)
    suggested = int(info.value.fix.split("--set max_seq_length=")[1].split()[0])
    assert suggested > latest
    check_trainable(preflight_stats(tokenize([Example(5, long_prompt), short], renderer,
                                             max_len=suggested), []),
                    Recipe(max_seq_length=suggested), "data.jsonl")


def test_rows_with_no_response_found_get_template_advice(tiny_llama_tokenizer) -> None:
    from recipes.data.prepare import check_trainable

    stats = {"no_trained_tokens": [3], "response_starts": [-1]}
    with pytest.raises(DataError) as info:
        check_trainable(stats, Recipe(), "data.jsonl")
    assert "row 3: no response found" in info.value.what and "chat_template" in info.value.fix


def test_trained_share_matches_masks(tiny_llama_tokenizer) -> None:
    toks = tokenize([Example(1, QA)], Renderer(tiny_llama_tokenizer, Recipe()), max_len=128)
    trained = sum(lab != IGNORE_INDEX for lab in toks[0].labels)
    assert preflight_stats(toks, [])["trained_token_share"] == pytest.approx(
        trained / len(toks[0].input_ids))


# ----------------------------------------------------------------------------- loading


ROWS = [{"instruction": f"q{i}", "input": "", "response": f"a{i}"} for i in range(5)]


@pytest.mark.parametrize("suffix", [".jsonl", ".json", ".csv", ".parquet", ".xlsx"])
def test_every_local_format_loads(tmp_path: Path, suffix: str) -> None:
    import pandas as pd

    path = tmp_path / f"data{suffix}"
    frame = pd.DataFrame(ROWS)
    {".jsonl": lambda: frame.to_json(path, orient="records", lines=True),
     ".json": lambda: path.write_text(json.dumps(ROWS), encoding="utf-8"),
     ".csv": lambda: frame.to_csv(path, index=False),
     ".parquet": lambda: frame.to_parquet(path),
     ".xlsx": lambda: frame.to_excel(path, index=False)}[suffix]()
    recipe = Recipe(dataset=str(path), dataset_format="instruction")
    examples, skipped, n = load_examples(recipe, str(path))
    assert n == 5 and not skipped
    assert examples[2].messages == [{"role": "user", "content": "q2"},
                                    {"role": "assistant", "content": "a2"}]


def test_sharegpt_roles_are_mapped() -> None:
    rows = [{"conversations": [{"from": "system", "value": "s"}, {"from": "human", "value": "h"},
                               {"from": "gpt", "value": "g"}]}]
    [ex], _ = normalise(rows, Recipe(dataset_format="sharegpt"), "x")
    assert [m["role"] for m in ex.messages] == ["system", "user", "assistant"]


def test_rows_without_answers_are_skipped_and_counted() -> None:
    rows = [{"messages": [{"role": "user", "content": "q"}]},
            {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user", "content": ""}, {"role": "assistant", "content": "a"}]}]
    examples, skipped = normalise(rows, Recipe(), "x")
    assert [e.row for e in examples] == [2]
    assert skipped == {"no assistant turn with text (row 1)": 1,
                       "a turn with empty text (row 3)": 1}


def test_column_mapping() -> None:
    rows = [{"question": "q", "answer": "a"}]
    recipe = Recipe(dataset_format="instruction",
                    columns={"instruction": "question", "response": "answer"})
    [ex], _ = normalise(rows, recipe, "x")
    assert ex.fields == {"instruction": "q", "input": "", "response": "a"}


def test_system_prompt_is_added_when_missing() -> None:
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}]
    [ex], _ = normalise(rows, Recipe(system_prompt="Be brief."), "x")
    assert ex.messages[0] == {"role": "system", "content": "Be brief."}


def test_split_is_seeded_disjoint_and_complete() -> None:
    examples = [Example(i, []) for i in range(1, 101)]
    a = split(examples, Recipe(seed=1, val_fraction=0.1, test_fraction=0.15))
    b = split(examples, Recipe(seed=1, val_fraction=0.1, test_fraction=0.15))
    c = split(examples, Recipe(seed=2, val_fraction=0.1, test_fraction=0.15))
    assert a.sizes() == {"train": 75, "val": 10, "test": 15}
    rows = lambda s: [e.row for e in s.train + s.val + s.test]  # noqa: E731
    assert rows(a) == rows(b) and rows(a) != rows(c)
    assert sorted(rows(a)) == list(range(1, 101))


# ------------------------------------------------------------------------------ errors


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found") as info:
        load_rows(str(tmp_path / "nope.jsonl"), Recipe())
    assert "nope.jsonl" in info.value.where


def test_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "data.txt"
    path.write_text("x", encoding="utf-8")
    with pytest.raises(DataError, match="unknown dataset file type"):
        load_rows(str(path), Recipe())


@pytest.mark.parametrize("content", ["", "\n\n", "instruction,response\n"])
def test_empty_dataset(tmp_path: Path, content: str) -> None:
    path = tmp_path / ("data.csv" if "," in content else "data.jsonl")
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="empty"):
        load_rows(str(path), Recipe())


def test_missing_column_lists_what_is_there(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"question": "q", "answer": "a"}\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_examples(Recipe(dataset_format="sharegpt"), str(path))
    assert "'conversations'" in info.value.what and "'question', 'answer'" in info.value.what


def test_malformed_turn_names_the_row() -> None:
    rows = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"speaker": "human", "text": "q"}]}]
    with pytest.raises(DataError, match="row 2, column 'messages': turn 1: a turn has no role"):
        normalise(rows, Recipe(), "x")


def test_unknown_role_names_the_row() -> None:
    rows = [{"messages": [{"role": "narrator", "content": "q"}]}]
    with pytest.raises(DataError, match="row 1, column 'messages': turn 1: unknown role 'narrator'"):
        normalise(rows, Recipe(), "x")


def test_all_rows_skipped_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"instruction": "", "response": ""}\n', encoding="utf-8")
    with pytest.raises(DataError, match="no usable rows"):
        load_examples(Recipe(dataset_format="instruction"), str(path))


def test_broken_json_names_the_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    good = json.dumps({"messages": [{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": "a"}]})
    path.write_text(f"{good}\n{good}\n{good[:25]}\n{good}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"line 3, column \d+: not valid JSON") as info:
        load_rows(str(path), Recipe())
    assert info.value.where == str(path)
    assert "delete that line" in info.value.fix


def test_blank_lines_in_jsonl_are_allowed(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n\n{"a": 2}\r\n  \n', encoding="utf-8")
    assert load_rows(str(path), Recipe()) == [{"a": 1}, {"a": 2}]


def test_a_line_that_is_not_an_object_is_named(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_text('{"a": 1}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(DataError, match="line 2: a JSON list, not an object"):
        load_rows(str(path), Recipe())


@pytest.mark.parametrize("suffix", [".jsonl", ".csv"])
def test_non_utf8_bytes_name_line_and_column(tmp_path: Path, suffix: str) -> None:
    path = tmp_path / f"d{suffix}"
    body = ('{"a": "ok"}\n{"a": "caf\u00e9"}\n' if suffix == ".jsonl"
            else "instruction,response\nhi,there\ncaf\u00e9,ok\n")
    path.write_bytes(body.encode("latin-1"))
    line = 2 if suffix == ".jsonl" else 3
    with pytest.raises(DataError, match=f"line {line}, column \\d+: byte 0xe9 is not UTF-8") as info:
        load_rows(str(path), Recipe())
    assert "re-save the file as UTF-8" in info.value.fix


def test_a_json_file_holding_one_conversation_is_one_row(tmp_path: Path) -> None:
    path = tmp_path / "d.json"
    row = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    path.write_text(json.dumps(row), encoding="utf-8")
    assert load_rows(str(path), Recipe()) == [row]


def test_the_bad_byte_column_counts_characters(tmp_path: Path) -> None:
    path = tmp_path / "d.jsonl"
    path.write_bytes('{"a": "\u00e9\u00e9'.encode() + b"\xff" + b'"}\n')
    with pytest.raises(DataError, match="line 1, column 10: byte 0xff"):
        load_rows(str(path), Recipe())


@pytest.mark.parametrize("text", [
    '[{"a": 1}, {"a": 2}]',             # a list of objects
    '{"data": [{"a": 1}, {"a": 2}]}',   # a list under one key
    '{"a": [1, 2]}',                    # columns
    '{"a": 1}\n{"a": 2}\n',             # JSON Lines saved as .json
])
def test_json_tables_in_every_common_shape(tmp_path: Path, text: str) -> None:
    path = tmp_path / "d.json"
    path.write_text(text, encoding="utf-8")
    assert load_rows(str(path), Recipe()) == [{"a": 1}, {"a": 2}]


@pytest.mark.parametrize(("row", "expected"), [
    ({"messages": []}, "messages"),
    ({"conversations": []}, "sharegpt"),
    ({"instruction": "q", "response": "a"}, "instruction"),
])
def test_auto_format_follows_the_columns(row: dict, expected: str) -> None:
    assert detect_format([row], Recipe(), "x") == expected


def test_auto_format_with_unknown_columns_says_what_to_set() -> None:
    with pytest.raises(DataError, match="cannot tell the dataset's layout") as info:
        detect_format([{"foo": "q", "bar": "a"}], Recipe(), "x")
    assert "columns=" in info.value.fix


def test_default_recipe_reads_the_default_dataset() -> None:
    """A recipe of defaults only must work: the default dataset in the default format."""
    loaded = load_examples(Recipe(), Recipe().dataset, base_dirs=[ROOT])
    assert loaded.examples and "read as sharegpt" in " ".join(loaded.notes)
