"""Where rows come from: folders, globs, save_to_disk folders, Excel sheets, text encodings."""

from __future__ import annotations

import codecs
import json
from pathlib import Path

import pytest

from recipes.data.prepare import load_examples
from recipes.data.sources import load_table
from recipes.errors import DataError
from recipes.schema import Recipe
from tests.layout_files import alpaca_rows, qa_rows, write_rows


def test_a_folder_of_files_is_one_dataset(tmp_path: Path) -> None:
    write_rows(tmp_path / "data" / "part-1.jsonl", alpaca_rows()[:5])
    write_rows(tmp_path / "data" / "part-2.jsonl", alpaca_rows()[5:])
    (tmp_path / "data" / "README.md").write_text("not data", encoding="utf-8")
    data = load_examples(Recipe(), str(tmp_path / "data"))
    assert len(data.examples) == 12 and data.layout == "alpaca"
    assert "read 2 files (part-1.jsonl … part-2.jsonl), 12 rows" in data.notes
    assert data.locate(7) == (str(tmp_path / "data" / "part-2.jsonl"), "line 2")


def test_a_glob_of_files(tmp_path: Path) -> None:
    for i in range(3):
        write_rows(tmp_path / f"shard-{i}.jsonl", alpaca_rows()[4 * i:4 * i + 4])
    write_rows(tmp_path / "other.jsonl", [{"text": "not this one"}])
    table = load_table(str(tmp_path / "shard-*.jsonl"), Recipe())
    assert len(table.rows) == 12
    with pytest.raises(DataError, match="no file matches the pattern"):
        load_table(str(tmp_path / "none-*.jsonl"), Recipe())


def test_a_folder_saved_with_save_to_disk(tmp_path: Path) -> None:
    import datasets

    datasets.DatasetDict({"train": datasets.Dataset.from_list(qa_rows()),
                          "test": datasets.Dataset.from_list(qa_rows()[:2])}
                         ).save_to_disk(str(tmp_path / "saved"))
    data = load_examples(Recipe(), str(tmp_path / "saved"))
    assert len(data.examples) == 12 and data.layout == "qa"
    assert len(load_examples(Recipe(dataset_split="test"), str(tmp_path / "saved")).examples) == 2
    with pytest.raises(DataError, match="no split 'dev'") as info:
        load_examples(Recipe(dataset_split="dev"), str(tmp_path / "saved"))
    assert info.value.fix == "--set dataset_split=train"


def test_excel_sheets(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "book.xlsx"
    with pd.ExcelWriter(path) as book:
        pd.DataFrame(qa_rows()).to_excel(book, sheet_name="train", index=False)
        pd.DataFrame(qa_rows()[:3]).to_excel(book, sheet_name="extra", index=False)
    first = load_examples(Recipe(), str(path))
    assert len(first.examples) == 12
    assert any("read sheet 'train' of 2 (train, extra)" in n for n in first.notes)
    assert first.locate(4) == (str(path), "sheet 'train' row 5")
    assert len(load_examples(Recipe(sheet="extra"), str(path)).examples) == 3
    assert len(load_examples(Recipe(sheet="2"), str(path)).examples) == 3


@pytest.mark.parametrize(("bom", "codec", "name"), [
    (codecs.BOM_UTF16_LE, "utf-16-le", "UTF-16 LE"), (codecs.BOM_UTF16_BE, "utf-16-be",
                                                     "UTF-16 BE"),
    (codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"), (codecs.BOM_UTF8, "utf-8", "")])
@pytest.mark.parametrize("suffix", [".jsonl", ".csv", ".json"])
def test_text_with_a_byte_order_mark_is_read(tmp_path: Path, bom: bytes, codec: str, name: str,
                                             suffix: str) -> None:
    rows = [{"question": "Où est la gare ?", "answer": "À gauche."}] * 4
    text = {".jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
            ".json": json.dumps(rows, ensure_ascii=False),
            ".csv": "question,answer\r\n" + "Où est la gare ?,À gauche.\r\n" * 4}[suffix]
    path = tmp_path / f"d{suffix}"
    path.write_bytes(bom + text.encode(codec))
    data = load_examples(Recipe(), str(path))
    assert data.examples[0].messages[-1]["content"] == "À gauche."
    assert any(f"read as {name} (byte-order mark)" in n for n in data.notes) == bool(name)


@pytest.mark.parametrize(("codec", "source"), [("utf-16-le", "UTF-16LE"),
                                               ("utf-16-be", "UTF-16BE")])
def test_utf16_without_a_bom_gets_the_right_advice(tmp_path: Path, codec: str,
                                                   source: str) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("question,answer\nhi,there\n".encode(codec))
    with pytest.raises(DataError, match="looks like UTF-16") as info:
        load_examples(Recipe(), str(path))
    assert f"iconv -f {source} -t UTF-8 d.csv" in info.value.fix


def test_windows_1252_bytes_get_cp1252_advice(tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_bytes("question,answer\nit’s,fine\n".encode("cp1252"))
    with pytest.raises(DataError, match=r"line 2, column 3: byte 0x92 is not UTF-8") as info:
        load_examples(Recipe(), str(path))
    assert "iconv -f CP1252 -t UTF-8" in info.value.fix


def test_parquet(tmp_path: Path) -> None:
    import pandas as pd

    path = tmp_path / "d.parquet"
    pd.DataFrame(qa_rows()).to_parquet(path)
    data = load_examples(Recipe(), str(path))
    assert len(data.examples) == 12 and data.locate(3) == (str(path), "row 3")
