"""The recipes the Recipes screen lists: the bundled ones, then the user's saved YAML files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from recipes.errors import RecipeError, SlothlabError
from recipes.registry import bundled
from recipes.schema import Recipe, load_recipe, recipe_from_mapping


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


def as_run(recipe: Recipe, tiny: bool) -> Recipe:
    """``recipe`` as a run would train it. In tiny mode: ``tiny`` set and the recipe's
    ``tiny_overrides`` applied, as ``slothlab --tiny`` does (``recipe_from_mapping``); then
    emptied, as ``dump_recipe`` writes them, so that a form edit of an overridden field is not
    overridden again when the edited copy runs."""
    if tiny and not recipe.tiny:
        try:
            recipe = recipe_from_mapping({**recipe.to_dict(), "tiny": True},
                                         source=f"{recipe.name} (tiny mode)")
        except RecipeError:  # an override breaks a cross-field rule: the run will say so
            recipe = dataclasses.replace(recipe, tiny=True)
    if recipe.tiny and recipe.tiny_overrides:
        recipe = dataclasses.replace(recipe, tiny_overrides={})
    return recipe

