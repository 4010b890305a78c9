"""The data a run trained on, recorded so that a resume on changed data is refused.

    record = data_record(recipe)        # {"sources": {...}, "fields": {...}}
    changes = differences(old, record)  # ["data/x.jsonl: 812 KiB → 815 KiB, content differs"]

A local source is recorded by its size and SHA-256 (a folder or a glob: every file in it); a
hub dataset by its id, split and subset (its revision is the hub's to keep). The recipe fields
that shape the prepared data are recorded beside them. The record lives in ``<run>/data.json``.
"""

from __future__ import annotations

import glob
import hashlib
from pathlib import Path
from typing import Any

from recipes.host import PROJECT_ROOT
from recipes.schema import FIELDS, Recipe, data_source, extra_sources

DATA_FILE = "data.json"
# Recipe fields that change which rows are trained on, or how they are rendered and cut.
DATA_FIELDS = ("dataset", "dataset_format", "dataset_split", "dataset_subset", "sheet",
               "columns", "prompt_template", "system_prompt", "chat_template", "max_seq_length",
               "drop_duplicates", "max_chars", "max_examples", "max_dropped_fraction",
               "val_fraction", "test_fraction", "split_by", "seed", "task_balance",
               "dataset_builder", "extra_datasets", "language_ratios", "corpus_sentences")


def _files(source: str) -> list[Path] | None:
    """The local files behind a source (None: a hub id)."""
    from recipes.data.sources import resolve_path

    if any(ch in source for ch in "*?["):
        pattern = source if Path(source).is_absolute() else str(PROJECT_ROOT / source)
        found = sorted(Path(p) for p in glob.glob(source) or glob.glob(pattern))
        return [p for p in found if p.is_file()]
    path = resolve_path(source, base_dirs=[PROJECT_ROOT])
    if path is None:
        return None
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file())
    return [path]


def _digest(path: Path) -> str:
    sha = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            sha.update(block)
    return sha.hexdigest()


def data_record(recipe: Recipe) -> dict[str, Any]:
    sources: dict[str, Any] = {}
    for source in [data_source(recipe), *extra_sources(recipe)]:
        files = _files(source)
        if files is None:
            sources[source] = {"hub": source, "split": recipe.dataset_split,
                               "subset": recipe.dataset_subset}
            continue
        for path in files:
            sources[str(path)] = {"bytes": path.stat().st_size, "sha256": _digest(path)}
    fields = {name: getattr(recipe, name) for name in DATA_FIELDS if name in FIELDS}
    return {"sources": sources, "fields": fields}


def differences(old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """What changed between two records, one line each (empty: the same data)."""
    out = []
    before, after = old.get("sources", {}), new.get("sources", {})
    for name in sorted(set(before) | set(after)):
        a, b = before.get(name), after.get(name)
        if a == b:
            continue
        if a is None:
            out.append(f"{name}: new source")
        elif b is None:
            out.append(f"{name}: no longer read (missing or not in the recipe)")
        elif "bytes" in a and "bytes" in b:
            out.append(f"{name}: content differs ({a['bytes']:,} bytes → {b['bytes']:,})")
        else:
            out.append(f"{name}: {a} → {b}")
    for name in sorted(set(old.get("fields", {})) & set(new.get("fields", {}))):
        a, b = old.get("fields", {}).get(name), new.get("fields", {}).get(name)
        if a != b:
            out.append(f"{name}: {a!r} → {b!r}")
    return out
