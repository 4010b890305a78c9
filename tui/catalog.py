"""The recipes the Recipes screen lists: the bundled ones, then the user's saved YAML files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recipes.errors import SlothlabError
from recipes.registry import bundled
from recipes.schema import Recipe, load_recipe


@dataclass
class RecipeEntry:
    name: str
    path: Path
    source: str  # "bundled" | "saved"
    recipe: Recipe | None
    error: str = ""  # why the file does not load


def _load(name: str, path: Path, source: str) -> RecipeEntry:
    try:
        return RecipeEntry(name, path, source, load_recipe(path))
    except SlothlabError as exc:
        return RecipeEntry(name, path, source, None, error=exc.render())


def load_catalog(saved_dir: Path | None) -> list[RecipeEntry]:
    entries = [_load(name, path, "bundled") for name, path in bundled().items()]
    if saved_dir is not None and saved_dir.is_dir():
        for path in sorted([*saved_dir.glob("*.yaml"), *saved_dir.glob("*.yml")]):
            entries.append(_load(path.stem, path, "saved"))
    return entries
