"""Bad input in each layout: one error line naming the file, the row and the column; exit 2;
nothing written under runs/. Rows that fail to fit are dropped and counted, and refused only
above max_dropped_fraction, with advice that works.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.data.prepare import load_examples, prepare
from recipes.errors import DataError
from recipes.schema import Recipe
from tests.layout_files import alpaca_rows, messages_rows, qa_rows, sharegpt_rows, write_rows
from tests.test_cli import snapshot
from tui.cli import EXIT_BAD_INPUT, main


def refused(path: Path, runs: Path, capsys: pytest.CaptureFixture, *more: str) -> str:
    """The first error line of `slothlab --recipe demo --set dataset=PATH`, checked refused."""
    before = snapshot(runs)
    code = main(["--recipe", "demo", "--set", f"dataset={path}", *more, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith(f"error: {path}: ") and "Traceback" not in err
    assert snapshot(runs) == before, "a refused command must not touch the runs folder"
    return err.splitlines()[0]


def with_rows(rows: list[dict], changes: dict[int, dict]) -> list[dict]:
    return [{**row, **changes.get(i, {})} for i, row in enumerate(rows)]


def test_alpaca_without_an_answer_column(tmp_path: Path, runs_dir: Path, capsys) -> None:
    rows = [{k: v for k, v in r.items() if k in ("instruction", "input")} for r in alpaca_rows()]
    line = refused(write_rows(tmp_path / "a.csv", rows), runs_dir, capsys)
    assert "row 1 (the header): no answer column (one of output, response, answer" in line
    assert "'instruction', 'input'" in line


def test_alpaca_with_empty_answers(tmp_path: Path, runs_dir: Path, capsys) -> None:
    rows = with_rows(alpaca_rows(), {2: {"output": ""}, 5: {"output": "  "}, 9: {"output": ""}})
    line = refused(write_rows(tmp_path / "a.jsonl", rows), runs_dir, capsys)
    assert ("line 3, column 'output': empty answer; 3 of 12 rows (25%) cannot be used, more "
            "than max_dropped_fraction=0.1") in line


def test_qa_csv_with_empty_answers_counts_spreadsheet_rows(tmp_path: Path, runs_dir: Path,
                                                           capsys) -> None:
    rows = with_rows(qa_rows(), {0: {"answer": ""}, 1: {"answer": ""}})
    line = refused(write_rows(tmp_path / "q.csv", rows), runs_dir, capsys)
    assert "row 2, column 'answer': empty answer; 2 of 12 rows" in line  # the header is row 1


def test_mixed_layouts_in_one_file(tmp_path: Path, runs_dir: Path, capsys) -> None:
    rows = messages_rows()[:6] + alpaca_rows()[:6]
    line = refused(write_rows(tmp_path / "m.jsonl", rows), runs_dir, capsys)
    assert "line 1 holds messages (messages ← 'messages'" in line
    assert "but line 7 holds alpaca (instruction ← 'instruction', response ← 'output'" in line
    assert line.endswith("mixed layouts")


@pytest.mark.parametrize(("rows", "column"), [
    (with_rows(messages_rows(), {3: {"messages": [{"role": "user", "content": "hi"},
                                                  {"role": "narrator", "content": "..."}]}}),
     "messages"),
    (with_rows(sharegpt_rows(), {3: {"conversations": [{"from": "human", "value": "hi"},
                                                       {"from": "narrator", "value": "..."}]}}),
     "conversations"),
])
def test_an_unknown_role(tmp_path: Path, runs_dir: Path, capsys, rows: list[dict],
                         column: str) -> None:
    line = refused(write_rows(tmp_path / "r.jsonl", rows), runs_dir, capsys)
    assert f"line 4, column '{column}': turn 2: unknown role 'narrator'" in line


def test_a_prompt_completion_row_without_its_completion(tmp_path: Path, runs_dir: Path,
                                                        capsys) -> None:
    rows = [{"prompt": f"p{i}", "completion": f"c{i}"} for i in range(12)]
    del rows[4]["completion"]
    line = refused(write_rows(tmp_path / "pc.jsonl", rows), runs_dir, capsys)
    assert "line 5, column 'completion': missing" in line


def test_a_function_call_that_is_not_json(tmp_path: Path, runs_dir: Path, capsys) -> None:
    rows = sharegpt_rows()
    rows[6]["conversations"][1]["value"] = "get_weather(Oslo)"
    line = refused(write_rows(tmp_path / "s.jsonl", rows), runs_dir, capsys)
    assert "line 7, column 'conversations': turn 2: a tool call that cannot be read" in line


def test_plain_text_with_empty_documents(tmp_path: Path, runs_dir: Path, capsys) -> None:
    rows = [{"text": "" if i < 4 else f"doc {i}"} for i in range(12)]
    line = refused(write_rows(tmp_path / "t.jsonl", rows), runs_dir, capsys)
    assert "line 1, column 'text': empty text; 4 of 12 rows (33%)" in line


def test_a_missing_sheet_lists_the_sheets(tmp_path: Path, runs_dir: Path, capsys) -> None:
    import pandas as pd

    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(qa_rows()).to_excel(book, sheet_name="train", index=False)
        pd.DataFrame(qa_rows()[:3]).to_excel(book, sheet_name="notes", index=False)
    line = refused(path, runs_dir, capsys, "--set", "sheet=dev")
    assert "no sheet 'dev' (the workbook has 'train', 'notes')" in line


def test_a_few_empty_answers_are_skipped_and_named(tmp_path: Path) -> None:
    rows = with_rows(alpaca_rows() * 2, {7: {"output": ""}})
    path = write_rows(tmp_path / "a.jsonl", rows)
    data = load_examples(Recipe(), str(path))
    assert data.skipped == {"empty answer (line 8)": 1} and len(data.examples) == 23


def test_the_advice_of_a_refusal_is_accepted(tmp_path: Path) -> None:
    rows = with_rows(alpaca_rows(), {2: {"output": ""}, 5: {"output": ""}, 9: {"output": ""}})
    path = write_rows(tmp_path / "a.jsonl", rows)
    with pytest.raises(DataError) as info:
        load_examples(Recipe(), str(path))
    assert info.value.fix.endswith("--set max_dropped_fraction=0.25")
    assert "fill in or delete those rows (lines 3, 6, 10)" in info.value.fix
    data = load_examples(Recipe(max_dropped_fraction=0.25), str(path))
    assert len(data.examples) == 9


def test_responses_cut_by_max_seq_length_are_dropped_not_refused(
        tmp_path: Path, tiny_llama_tokenizer) -> None:
    rows = [{"instruction": f"Say {i}.", "output": f"{i}."} for i in range(30)]
    rows[11]["instruction"] = "Read this: " + "word " * 200  # its answer starts past 128
    path = write_rows(tmp_path / "long.jsonl", rows)
    recipe = Recipe(dataset=str(path), max_seq_length=128, val_fraction=0, test_fraction=0)
    data = load_examples(recipe, str(path))
    prepared = prepare(recipe, tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                       source=str(path), locate=data.locate)
    assert len(prepared.train) == 29
    assert [ex.row for ex in prepared.splits.train] == [t.row for t in prepared.train], \
        "the split's examples stay paired with their items"
    dropped = prepared.stats["dropped"]
    assert dropped["count"] == 1 and dropped["rows"] == ["line 12"]
    note = next(n for n in prepared.notes if n.startswith("dropped 1 example"))
    assert "(line 12)" in note and f"max_seq_length={dropped['max_seq_length_to_keep']}" in note
    # Above max_dropped_fraction the same advice refuses the run, and following it works.
    strict = Recipe(dataset=str(path), max_seq_length=128, val_fraction=0, test_fraction=0,
                    max_dropped_fraction=0.01)
    with pytest.raises(DataError) as info:
        prepare(strict, tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                source=str(path), locate=data.locate)
    assert "line 12: the response starts after max_seq_length=128 tokens in 1 of 30" in str(
        info.value)
    need = int(info.value.fix.split("--set max_seq_length=")[1].split()[0])
    longer = Recipe(dataset=str(path), max_seq_length=need, val_fraction=0, test_fraction=0,
                    max_dropped_fraction=0.01)
    kept = prepare(longer, tiny_llama_tokenizer, data.examples, data.skipped, data.n_rows,
                   source=str(path))
    assert len(kept.train) == 30 and not kept.stats["dropped"]
    accept = float(info.value.fix.split("--set max_dropped_fraction=")[1])
    assert accept == 0.04
    prepare(Recipe(dataset=str(path), max_seq_length=128, val_fraction=0, test_fraction=0,
                   max_dropped_fraction=accept), tiny_llama_tokenizer, data.examples,
            data.skipped, data.n_rows, source=str(path))


def test_rows_named_through_a_folder_of_files(tmp_path: Path) -> None:
    write_rows(tmp_path / "shards" / "a.jsonl", alpaca_rows()[:6])
    bad = alpaca_rows()[6:]
    bad[2]["output"] = ""
    bad[3]["output"] = ""
    write_rows(tmp_path / "shards" / "b.jsonl", bad)
    with pytest.raises(DataError) as info:
        load_examples(Recipe(), str(tmp_path / "shards"))
    assert info.value.where == str(tmp_path / "shards" / "b.jsonl")
    assert info.value.what.startswith("line 3, column 'output': empty answer")
