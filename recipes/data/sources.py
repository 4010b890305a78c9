"""Where rows come from: a local file, a folder or glob of files, a folder saved with
``datasets.save_to_disk``, or a hub dataset; and cell text cleaning.

    from recipes.data.sources import load_rows, load_table
    rows = load_rows("data/demo_qa.jsonl", recipe)      # a list of dicts, one per row
    table = load_table("shards/*.jsonl", recipe)        # rows + how to name each in a message

Builders (``recipes.builders``) read their sources through here; nothing here imports them.
"""

from __future__ import annotations

import glob as globbing
import re
from pathlib import Path
from typing import Any

from recipes.data.readers import LOCAL_SUFFIXES, Table, decode, read_file, read_text
from recipes.errors import DataError
from recipes.schema import Recipe

__all__ = ["LOCAL_SUFFIXES", "Table", "clean_text", "decode", "load_rows", "load_table",
           "present_columns", "read_text", "resolve_path", "source_exists"]
GLOB_CHARS = ("*", "?", "[")
_SPACE_RUNS = re.compile(r"\s\s|[^\S ]")  # two whitespace characters, or one that is not " "


def resolve_path(name: str, *, base_dirs: list[Path] | None = None) -> Path | None:
    """A local path (file, folder or glob) for ``name``, trying the cwd then ``base_dirs``;
    None if it looks like a hub id."""
    candidate = Path(name).expanduser()
    if any(c in name for c in GLOB_CHARS):  # hub ids never hold these
        for base in [Path.cwd(), *(base_dirs or [])]:
            pattern = candidate if candidate.is_absolute() else base / candidate
            if globbing.glob(str(pattern), recursive=True):
                return pattern
        return candidate
    looks_local = candidate.suffix.lower() in LOCAL_SUFFIXES or name.startswith((".", "/", "~"))
    for base in [Path.cwd(), *(base_dirs or [])]:
        path = candidate if candidate.is_absolute() else base / candidate
        if path.exists():
            return path
    if looks_local:
        return candidate  # a local path that does not exist: the caller reports it
    return None


def source_exists(path: Path) -> bool:
    """True for an existing file or folder, or a glob pattern that matches a file."""
    if path.exists():
        return True
    return any(c in str(path) for c in GLOB_CHARS) and any(
        Path(p).is_file() for p in globbing.glob(str(path), recursive=True))


def load_rows(source: str, recipe: Recipe, *, base_dirs: list[Path] | None = None) -> list[dict]:
    """Rows of a local file or folder, or of a hub dataset, as dicts."""
    return load_table(source, recipe, base_dirs=base_dirs).rows


def load_table(source: str, recipe: Recipe, *, base_dirs: list[Path] | None = None) -> Table:
    """Rows of ``source`` with what names each row. Errors name the file and what to do."""
    path = resolve_path(source, base_dirs=base_dirs)
    if path is None:
        return _load_hub(source, recipe)
    if any(c in str(path) for c in GLOB_CHARS) and not path.exists():
        files = sorted(Path(p) for p in globbing.glob(str(path), recursive=True)
                       if Path(p).is_file())
        if not files:
            raise DataError("no file matches the pattern", where=str(path),
                            fix="check the pattern (quote it in the shell so that slothlab, "
                                "not the shell, expands it)")
        return _several(files, str(path), recipe)
    if not path.exists():
        searched = " then ".join(str(d) for d in [Path.cwd(), *(base_dirs or [])])
        offline = (f", or run offline with --tiny (uses {recipe.sample_dataset})"
                   if recipe.sample_dataset and not recipe.tiny else "")
        raise DataError("dataset file not found", where=str(path),
                        fix=f"check the path (a relative path is looked up in {searched}){offline}")
    if path.is_dir():
        return _load_folder(path, recipe)
    kind = LOCAL_SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise DataError(f"unknown dataset file type '{path.suffix}'", where=str(path),
                        fix=f"use one of {', '.join(LOCAL_SUFFIXES)}, a folder of them, or a "
                            "folder saved with datasets' save_to_disk")
    return read_file(path, kind, sheet=recipe.sheet)


def _load_folder(path: Path, recipe: Recipe) -> Table:
    """A ``save_to_disk`` folder (Dataset or DatasetDict), or a folder of data files."""
    if (path / "dataset_info.json").exists() or (path / "dataset_dict.json").exists():
        import datasets

        datasets.disable_progress_bars()
        try:
            ds = datasets.load_from_disk(str(path))
        except Exception as exc:
            raise DataError(f"cannot load the saved dataset ({type(exc).__name__}: "
                            f"{str(exc)[:200]})", where=str(path),
                            fix="check the folder is a whole datasets.save_to_disk output") from None
        notes = []
        if isinstance(ds, datasets.DatasetDict):
            if recipe.dataset_split not in ds:
                raise DataError(f"no split '{recipe.dataset_split}' (it has "
                                f"{', '.join(repr(s) for s in ds)})", where=str(path),
                                fix=f"--set dataset_split={next(iter(ds))}")
            notes.append(f"read split '{recipe.dataset_split}' of the saved dataset")
            ds = ds[recipe.dataset_split]
        return Table(ds.to_list(), str(path), notes=notes)
    files = sorted(p for p in path.rglob("*")
                   if p.is_file() and p.suffix.lower() in LOCAL_SUFFIXES
                   and not any(part.startswith(".") for part in p.relative_to(path).parts))
    if not files:
        raise DataError("the folder holds no data file", where=str(path),
                        fix=f"put {'/'.join(LOCAL_SUFFIXES)} files in it, or point at a folder "
                            "saved with datasets' save_to_disk")
    return _several(files, str(path), recipe)


def _several(files: list[Path], where: str, recipe: Recipe) -> Table:
    """Files read one after another into one table; each row still names its own file."""
    rows: list[dict] = []
    parts: list[tuple[int, Table]] = []
    notes: list[str] = []
    for file in files:
        kind = LOCAL_SUFFIXES.get(file.suffix.lower())
        if kind is None:
            raise DataError(f"unknown dataset file type '{file.suffix}'", where=str(file),
                            fix=f"use one of {', '.join(LOCAL_SUFFIXES)}")
        table = read_file(file, kind, sheet=recipe.sheet)
        parts.append((len(rows), table))
        rows.extend(table.rows)
        table.rows = []  # the combined list holds them
        notes += [f"{file.name}: {note}" for note in table.notes]
    if len(files) > 1:
        notes.insert(0, f"read {len(files)} files ({files[0].name} … {files[-1].name}), "
                        f"{len(rows)} rows")
    return Table(rows, where, parts=parts, notes=notes)


def _load_hub(dataset_id: str, recipe: Recipe) -> Table:
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
    return Table(ds.to_list(), dataset_id)


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
    text = str(value)
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = text.strip()  # the same object when there is nothing to strip
    if "\n" in text or not _SPACE_RUNS.search(text):
        return text
    return " ".join(text.split())
