"""The recipes the Recipes screen lists: the bundled ones, then the user's saved YAML files."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from recipes.errors import SlothlabError
from recipes.registry import bundled
from recipes.schema import Recipe, load_recipe, recipe_from_mapping


@dataclass
class RecipeEntry:
    name: str
    path: Path
    source: str  # "bundled" | "saved"
    recipe: Recipe | None
    error: str = ""  # why the file does not load
    tiny_error: str = ""  # why it does not load in tiny mode (its tiny_overrides), as --tiny says

    def error_for(self, tiny: bool) -> str:
        """Why this recipe cannot be configured or started now; "" when it can."""
        return self.error or (self.tiny_error if tiny else "")


def _load(name: str, path: Path, source: str) -> RecipeEntry:
    try:
        recipe = load_recipe(path)
    except SlothlabError as exc:
        return RecipeEntry(name, path, source, None, error=exc.render())
    tiny_error = ""
    if not recipe.tiny:
        try:  # exactly what `slothlab --recipe FILE --tiny` loads
            load_recipe(path, overrides=["tiny=true"])
        except SlothlabError as exc:
            tiny_error = exc.render()
    return RecipeEntry(name, path, source, recipe, tiny_error=tiny_error)


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
    overridden again when the edited copy runs.

    Raises ``RecipeError`` when an override is invalid (a bad value, or one that breaks a
    cross-field rule): ``slothlab --tiny`` refuses such a recipe, so no tiny run of it exists
    (``RecipeEntry.tiny_error`` has the same words for a catalog entry)."""
    if tiny and not recipe.tiny:
        recipe = recipe_from_mapping({**recipe.to_dict(), "tiny": True},
                                     source=f"{recipe.name} (tiny mode)")
    if recipe.tiny and recipe.tiny_overrides:
        recipe = dataclasses.replace(recipe, tiny_overrides={})
    return recipe
