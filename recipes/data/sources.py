"""Where rows come from: local paths, file readers (JSON Lines, JSON, CSV, Parquet, Excel),
hub datasets, UTF-8 decoding with errors that name line and column, and cell cleaning.

    from recipes.data.sources import load_rows
    rows = load_rows("data/demo_qa.jsonl", recipe)      # a list of dicts, one per row
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

from recipes.errors import DataError
from recipes.schema import Recipe

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                  ".xlsx": "excel"}


def resolve_path(name: str, *, base_dirs: list[Path] | None = None) -> Path | None:
    """A local path for ``name``, trying the cwd then ``base_dirs``; None if it looks like a hub id."""
    candidate = Path(name).expanduser()
    looks_local = candidate.suffix.lower() in LOCAL_SUFFIXES or name.startswith((".", "/", "~"))
    for base in [Path.cwd(), *(base_dirs or [])]:
        path = candidate if candidate.is_absolute() else base / candidate
        if path.exists():
            return path
    if looks_local:
        return candidate  # a local path that does not exist: the caller reports it
    return None


def load_rows(source: str, recipe: Recipe, *, base_dirs: list[Path] | None = None) -> list[dict]:
    """Rows of a local file or a hub dataset, as dicts. Errors name the file and what to do."""
    path = resolve_path(source, base_dirs=base_dirs)
    if path is None:
        return _load_hub(source, recipe)
    if not path.exists():
        searched = " then ".join(str(d) for d in [Path.cwd(), *(base_dirs or [])])
        offline = (f", or run offline with --tiny (uses {recipe.sample_dataset})"
                   if recipe.sample_dataset and not recipe.tiny else "")
        raise DataError("dataset file not found", where=str(path),
                        fix=f"check the path (a relative path is looked up in {searched}){offline}")
    if path.is_dir():
        raise DataError("dataset path is a folder, not a file", where=str(path),
                        fix=f"point at one {'/'.join(LOCAL_SUFFIXES)} file")
    kind = LOCAL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown dataset file type '{path.suffix}'", where=str(path),
                        fix=f"use one of {', '.join(LOCAL_SUFFIXES)}")
    with open(path, "rb") as fh:
        blank = not fh.read(65536).strip()
    if blank:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    try:
        rows = _read_local(path, kind, turn_columns=(recipe.columns.get("messages", "messages"),
                                                     recipe.columns.get("conversations", "conversations")))
    except DataError:
        raise
    except Exception as exc:  # parser errors from pandas/pyarrow/openpyxl
        raise DataError(f"cannot read it as {kind} ({type(exc).__name__}: {str(exc)[:300]})",
                        where=str(path), fix="check the file is valid and not truncated") from None
    if not rows:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    return rows


def _read_local(path: Path, kind: str, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    if kind == "excel":
        import pandas as pd

        frame = pd.read_excel(path, dtype=str, keep_default_na=False)
        return frame.to_dict(orient="records")
    if kind == "csv":
        import pandas as pd

        # Quoted multi-line fields and CRLF endings are common in real exports.
        frame = pd.read_csv(io.StringIO(read_text(path)), dtype=str, keep_default_na=False)
        return frame.to_dict(orient="records")
    if kind == "json":
        return _read_json(path, turn_columns)
    import datasets

    datasets.disable_progress_bars()
    ds = datasets.load_dataset(kind, data_files=str(path), split="train")
    return ds.to_list()


def read_text(path: Path) -> str:
    """A text file as UTF-8; a byte that is not UTF-8 is reported with its line and column."""
    data = path.read_bytes()
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1  # characters
        raise DataError(
            f"line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 text",
            where=str(path),
            fix=f"re-save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 {path.name} "
                f"> utf8-{path.name}) and point `dataset` at the new file",
        ) from None
    return text.removeprefix("\ufeff")  # a byte-order mark from Windows editors


def _read_json(path: Path, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    """JSON Lines (blank lines allowed), or one JSON array of objects / object of columns.

    Read here rather than through ``datasets`` so that an error names its line, and so that
    rows keep exactly the keys they have (missing columns are reported per row later).
    """
    text = read_text(path)
    if path.suffix.lower() == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            whole = json.loads(text)
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSON Lines saved as .json
                raise _json_error(path, exc.lineno, exc) from None
        else:
            return _json_table(whole, path, turn_columns)
    rows: list[dict] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _json_error(path, lineno, exc) from None
        if not isinstance(row, dict):
            raise DataError(f"line {lineno}: a JSON {type(row).__name__}, not an object",
                            where=str(path),
                            fix="write one object per line, e.g. {\"messages\": [...]}")
        rows.append(row)
    return rows


def _json_error(path: Path, lineno: int, exc: json.JSONDecodeError) -> DataError:
    return DataError(
        f"line {lineno}, column {exc.colno}: not valid JSON ({exc.msg})", where=str(path),
        fix="fix or delete that line (a line cut short usually means an interrupted download "
            "or copy); JSON Lines files hold one object per line",
    )


def _json_table(whole: Any, path: Path, turn_columns: tuple[str, ...] = ()) -> list[dict]:
    """Rows from ``[{...}, ...]``, ``{"data": [{...}, ...]}`` or ``{"col": [...], ...}``.

    An object whose one key is a turns column (``{"messages": [...]}``) is one row, not a
    table of turns.
    """
    if isinstance(whole, dict):
        values = list(whole.values())
        if len(whole) == 1 and next(iter(whole)) in turn_columns:
            whole = [whole]
        elif len(values) == 1 and isinstance(values[0], list) and all(
                isinstance(row, dict) for row in values[0]):
            whole = values[0]
        elif values and all(isinstance(v, list) for v in values) and len(
                {len(v) for v in values}) == 1:
            whole = [dict(zip(whole, cells, strict=True)) for cells in zip(*values, strict=True)]
    if not isinstance(whole, list):
        raise DataError("the JSON file is one object, not a table of rows", where=str(path),
                        fix="use JSON Lines (one object per line) or a JSON list of objects")
    for i, row in enumerate(whole, start=1):
        if not isinstance(row, dict):
            raise DataError(f"row {i}: a JSON {type(row).__name__}, not an object",
                            where=str(path), fix="each row must be an object of columns")
    return whole


def _load_hub(dataset_id: str, recipe: Recipe) -> list[dict]:
    from recipes.hub import ensure_available

    ensure_available(dataset_id, kind="dataset", field="dataset", local_hint="/path/to/data.jsonl")
    import datasets

    datasets.disable_progress_bars()
    try:
        ds = datasets.load_dataset(dataset_id, recipe.dataset_subset or None,
                                   split=recipe.dataset_split)
    except Exception as exc:
        raise DataError(
            f"could not load hub dataset '{dataset_id}' ({type(exc).__name__}: {str(exc)[:200]})",
            where="dataset",
            fix="check the id and your network/HF token, or use --tiny, or "
                "--set dataset=/path/to/file.jsonl",
        ) from None
    if recipe.max_examples:
        ds = ds.select(range(min(recipe.max_examples, len(ds))))
    return ds.to_list()



def present_columns(rows: list[dict]) -> list[str]:
    """Column names in first-seen order (rows read from JSON need not all have every key)."""
    return list(dict.fromkeys(key for row in rows[:1000] for key in row))



def clean_text(value: Any) -> str:
    """Cell text with line endings unified (CRLF exports) and outer whitespace stripped.

    Single-line text also has runs of spaces collapsed; multi-line text (code, lists) keeps
    its inner layout.
    """
    if value is None:
        return ""
    if isinstance(value, float) and value != value:  # NaN from pandas
        return ""
    text = str(value).replace("\r\n", "\n").replace("\r", "\n").strip()
    return text if "\n" in text else " ".join(text.split())

