"""File readers: one local file (JSON Lines, JSON, CSV, Parquet, Excel) as a ``Table`` of rows.

Text files are decoded here, so an error names its line and column: UTF-8 (a byte-order mark
is dropped), UTF-16 or UTF-32 with a byte-order mark (decoded, and said so in the preflight),
and anything else refused with the ``iconv`` command that converts it. Rows keep exactly the
keys they have; a ``Table`` knows how to name each row in a message ("line 7" in JSON Lines,
"sheet 'Sheet1' row 5" in Excel, where the header is row 1 as a spreadsheet shows it).
"""

from __future__ import annotations

import bisect
import codecs
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes.errors import DataError

LOCAL_SUFFIXES = {".jsonl": "json", ".json": "json", ".csv": "csv", ".parquet": "parquet",
                  ".xlsx": "excel"}
# Longest first: the UTF-32 LE mark starts with the UTF-16 LE one.
BOMS = ((codecs.BOM_UTF32_LE, "utf-32-le", "UTF-32 LE"), (codecs.BOM_UTF32_BE, "utf-32-be",
        "UTF-32 BE"), (codecs.BOM_UTF8, "utf-8", "UTF-8"), (codecs.BOM_UTF16_LE, "utf-16-le",
        "UTF-16 LE"), (codecs.BOM_UTF16_BE, "utf-16-be", "UTF-16 BE"))


@dataclass
class Table:
    """Rows from one source, and how to name each of them (``locate``) in a message."""

    rows: list[dict]
    where: str  # the file, folder or hub id named in errors
    unit: str = "row"  # "line" for JSON Lines
    first: int = 1  # the label of rows[0]: 2 where a header row comes first (CSV, Excel)
    lines: list[int] | None = None  # JSON Lines: the line of each row (blank lines skipped)
    sheet: str = ""
    parts: list[tuple[int, Table]] = field(default_factory=list)  # several files, by first row
    notes: list[str] = field(default_factory=list)

    def locate(self, index: int) -> tuple[str, str]:
        """(file, "line 7") for the row at 0-based ``index``."""
        if self.parts:
            k = bisect.bisect_right([start for start, _ in self.parts], index) - 1
            start, part = self.parts[k]
            return part.locate(index - start)
        number = self.lines[index] if self.lines is not None else index + self.first
        sheet = f"sheet '{self.sheet}' " if self.sheet else ""
        return self.where, f"{sheet}{self.unit} {number}"

    def label(self, index: int) -> str:
        return self.locate(index)[1]

    def columns_at(self, index: int) -> tuple[str, str]:
        """(file, label) of where the columns of the row at ``index`` are named: the header
        row of a CSV or sheet, else the row itself."""
        if self.parts:
            k = bisect.bisect_right([start for start, _ in self.parts], index) - 1
            start, part = self.parts[k]
            return part.columns_at(index - start)
        if self.first == 2:
            sheet = f"sheet '{self.sheet}' " if self.sheet else ""
            return self.where, f"{sheet}row 1 (the header)"
        return self.locate(index)


def read_file(path: Path, kind: str, *, sheet: str = "") -> Table:
    """One local file of a known kind; parser errors become DataErrors naming the file."""
    with open(path, "rb") as fh:
        blank = not fh.read(65536).strip()
    if blank:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    try:
        if kind == "excel":
            table = _read_excel(path, sheet)
        elif kind == "csv":
            table = _read_csv(path)
        elif kind == "json":
            table = _read_json(path)
        else:
            import datasets

            datasets.disable_progress_bars()
            ds = datasets.load_dataset(kind, data_files=str(path), split="train")
            table = Table(ds.to_list(), str(path))
    except DataError:
        raise
    except Exception as exc:  # parser errors from pandas/pyarrow/openpyxl
        raise DataError(f"cannot read it as {kind} ({type(exc).__name__}: {str(exc)[:300]})",
                        where=str(path), fix="check the file is valid and not truncated") from None
    if not table.rows:
        raise DataError("the dataset is empty (0 rows)", where=str(path),
                        fix="add rows, or point `dataset` at another file")
    return table


def _read_csv(path: Path) -> Table:
    """A CSV file (quoted multi-line fields and CRLF endings are common in real exports)."""
    import pandas as pd

    with open(path, "rb") as fh:
        head = fh.read(4096)
    codec, note = "utf-8-sig", ""
    for bom, name, label in BOMS:
        if head.startswith(bom) and name != "utf-8":
            codec, note = name.removesuffix("-le").removesuffix("-be"), f"read as {label} " \
                "(byte-order mark)"
            break
    else:
        wide = _utf16_without_bom(head)
        if wide:
            raise DataError(f"it looks like {wide} text without a byte-order mark, not UTF-8",
                            where=str(path), fix=_iconv(path, wide.replace(" ", "")))
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding=codec)
    except UnicodeDecodeError:
        decode(path)  # raises the error naming line and column
        raise
    return Table(frame.to_dict(orient="records"), str(path), first=2,
                 notes=[note] if note else [])


def _read_excel(path: Path, sheet: str) -> Table:
    import pandas as pd

    with pd.ExcelFile(path) as book:
        names = [str(n) for n in book.sheet_names]
        if not sheet:
            chosen = names[0]
        elif sheet in names:
            chosen = sheet
        elif sheet.isdigit() and 1 <= int(sheet) <= len(names):
            chosen = names[int(sheet) - 1]
        else:
            raise DataError(f"no sheet '{sheet}' (the workbook has "
                            f"{', '.join(repr(n) for n in names)})", where=str(path),
                            fix=f"--set sheet={names[0]!r} (a name, or its number from 1)")
        frame = book.parse(chosen, dtype=str, keep_default_na=False)
    notes = []
    if len(names) > 1:
        notes.append(f"read sheet '{chosen}' of {len(names)} ({', '.join(names)}); "
                     "choose another with --set sheet=NAME")
    return Table(frame.to_dict(orient="records"), str(path), first=2, sheet=chosen, notes=notes)


def decode(path: Path) -> tuple[str, str]:
    """A text file's text, and a note when it was not plain UTF-8 (UTF-16/32 by its BOM)."""
    data = path.read_bytes()
    for bom, codec, name in BOMS:
        if data.startswith(bom):
            body = data[len(bom):]
            if codec == "utf-8":
                return _utf8(body, path), ""
            try:
                return body.decode(codec), f"read as {name} (byte-order mark)"
            except UnicodeDecodeError as exc:
                raise DataError(f"byte {exc.start + len(bom)}: not valid {name} text",
                                where=str(path), fix=_iconv(path, codec.upper())) from None
    return _utf8(data, path), ""


def read_text(path: Path) -> str:
    """A text file as text (see ``decode``)."""
    return decode(path)[0]


def _utf8(data: bytes, path: Path) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        line_start = data.rfind(b"\n", 0, exc.start) + 1
        column = len(data[line_start:exc.start].decode("utf-8", "replace")) + 1  # characters
        wide = _utf16_without_bom(data)
        if wide:
            what = f"it looks like {wide} text without a byte-order mark, not UTF-8"
            source = wide.replace(" ", "")
        else:
            what = f"line {line}, column {column}: byte 0x{data[exc.start]:02x} is not UTF-8 text"
            # Bytes 0x80-0x9f are printable only in Windows-1252 (Excel's CSV on Windows).
            source = "CP1252" if 0x80 <= data[exc.start] <= 0x9F else "LATIN1"
        raise DataError(what, where=str(path), fix=_iconv(path, source)) from None


def _utf16_without_bom(data: bytes) -> str:
    """'UTF-16 LE' / 'UTF-16 BE' when every other byte of the start is zero (ASCII in UTF-16)."""
    head = data[:4096]
    if len(head) < 4:
        return ""
    even, odd = head[0::2], head[1::2]
    if odd.count(0) > 0.9 * len(odd) and even.count(0) < 0.1 * len(even):
        return "UTF-16 LE"
    if even.count(0) > 0.9 * len(even) and odd.count(0) < 0.1 * len(odd):
        return "UTF-16 BE"
    return ""


def _iconv(path: Path, source: str) -> str:
    return (f"re-save the file as UTF-8 (e.g. iconv -f {source} -t UTF-8 {path.name} > "
            f"utf8-{path.name}) and point `dataset` at the new file")


def _read_json(path: Path) -> Table:
    """JSON Lines (blank lines allowed), or one JSON array of objects / object of columns.

    JSON Lines is read line by line from the bytes (never the whole file as one string), so
    memory holds the rows and little else.
    """
    with open(path, "rb") as fh:
        head = fh.read(4096)
    if any(head.startswith(bom) for bom, codec, _ in BOMS if codec != "utf-8"):
        return _read_json_text(path)
    wide = _utf16_without_bom(head)
    if wide:
        raise DataError(f"it looks like {wide} text without a byte-order mark, not UTF-8",
                        where=str(path), fix=_iconv(path, wide.replace(" ", "")))
    if path.suffix.lower() == ".json" and head.lstrip(codecs.BOM_UTF8 + b" \t\r\n")[:1] in (
            b"[", b"{"):
        data = path.read_bytes().removeprefix(codecs.BOM_UTF8)
        try:
            whole = json.loads(data)
        except UnicodeDecodeError:
            decode(path)  # raises the error naming line and column
            raise
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":  # "Extra data": JSON Lines saved as .json
                raise _json_error(path, exc.lineno, exc) from None
        else:
            return Table(_json_table(whole, path), str(path))
        del data
    rows: list[dict] = []
    lines: list[int] = []
    loads = json.loads
    with open(path, "rb") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if lineno == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            if raw.isspace() or not raw:
                continue
            try:
                row = loads(raw)
            except UnicodeDecodeError:
                decode(path)  # raises the error naming line and column
                raise
            except json.JSONDecodeError as exc:
                raise _json_error(path, lineno, exc) from None
            if not isinstance(row, dict):
                raise DataError(f"line {lineno}: a JSON {type(row).__name__}, not an object",
                                where=str(path),
                                fix="write one object per line, e.g. {\"messages\": [...]}")
            rows.append(row)
            lines.append(lineno)
    return Table(rows, str(path), unit="line", lines=lines)


def _read_json_text(path: Path) -> Table:
    """A JSON or JSON Lines file in UTF-16/32 (by its byte-order mark), decoded whole."""
    text, note = decode(path)
    if path.suffix.lower() == ".json" and text.lstrip()[:1] in ("[", "{"):
        try:
            return Table(_json_table(json.loads(text), path), str(path), notes=[note])
        except json.JSONDecodeError as exc:
            if exc.msg != "Extra data":
                raise _json_error(path, exc.lineno, exc) from None
    rows: list[dict] = []
    lines: list[int] = []
    for lineno, line in enumerate(text.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise _json_error(path, lineno, exc) from None
        if not isinstance(row, dict):
            raise DataError(f"line {lineno}: a JSON {type(row).__name__}, not an object",
                            where=str(path), fix="write one object per line")
        rows.append(row)
        lines.append(lineno)
    return Table(rows, str(path), unit="line", lines=lines, notes=[note])


def _json_error(path: Path, lineno: int, exc: json.JSONDecodeError) -> DataError:
    return DataError(
        f"line {lineno}, column {exc.colno}: not valid JSON ({exc.msg})", where=str(path),
        fix="fix or delete that line (a line cut short usually means an interrupted download "
            "or copy); JSON Lines files hold one object per line",
    )


TURN_COLUMNS = ("messages", "conversations")


def _json_table(whole: Any, path: Path) -> list[dict]:
    """Rows from ``[{...}, ...]``, ``{"data": [{...}, ...]}`` or ``{"col": [...], ...}``.

    An object whose one key is a turns column (``{"messages": [...]}``) is one row, not a
    table of turns.
    """
    if isinstance(whole, dict):
        values = list(whole.values())
        if len(whole) == 1 and next(iter(whole)) in TURN_COLUMNS:
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
