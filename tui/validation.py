"""Every problem with a recipe at once: what ctrl+r in Configure and s on Recipes both check.

The schema stops at the first bad value (the CLI prints one error). A person fixing a recipe in
the TUI wants the whole list: each field's type and bounds on its own, ``target_modules``
against the model's layers, the data files the run will read, and then, once every field is
fine, the cross-field rules.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recipes.errors import RecipeError
from recipes.models import linear_modules_of, unknown_target_modules
from recipes.schema import coerce, data_fields, read_yaml, recipe_from_mapping
from tui.widgets.field_editor import missing_data_file, short_error


def target_modules_problem(values: dict[str, Any]) -> str:
    """Why ``target_modules`` names layers the model does not have; "" when fine or unknown."""
    model, modules = values.get("model"), values.get("target_modules")
    if not isinstance(model, str) or not isinstance(modules, list):
        return ""
    unknown = unknown_target_modules(model, modules)
    if not unknown:
        return ""
    return (f"{', '.join(unknown)}: no such layer in {model}; its linear layers are "
            f"{', '.join(linear_modules_of(model) or ())} (or all-linear)")


def data_problems(values: dict[str, Any]) -> dict[str, str]:
    """The data fields the run reads (``schema.data_fields``) whose local file is missing."""
    read = data_fields(bool(values.get("tiny")), values.get("sample_dataset"),
                       values.get("sample_extra_datasets"))
    return {name: problem for name in read if (problem := missing_data_file(values.get(name)))}


def file_problems(path: Path, tiny: bool) -> list[str]:
    """Every problem with the recipe file ``path`` as it would run (``tiny``: with its
    tiny_overrides applied, as ``slothlab --tiny``), one line each; [] when it can start."""
    try:
        data, _ = read_yaml(path)
    except RecipeError as exc:
        return [exc.render()]
    if not isinstance(data, dict):
        return ["a recipe must be a mapping of field: value"]
    values: dict[str, Any] = {}
    problems: list[str] = []
    for key, value in data.items():
        try:
            values[str(key)] = coerce(str(key), value, where=str(key))
        except RecipeError as exc:
            problems.append(f"{key}: {short_error(exc)}")
    if tiny or values.get("tiny"):
        values["tiny"] = True
        for key, value in (values.get("tiny_overrides") or {}).items():
            try:
                values[key] = coerce(key, value, where=f"tiny_overrides.{key}")
            except RecipeError as exc:
                problems.append(f"tiny_overrides.{key}: {short_error(exc)}")
        values["tiny_overrides"] = {}
    if problems:
        return problems
    if (target := target_modules_problem(values)):
        problems.append(f"target_modules: {target}")
    problems += [f"{name}: {problem}" for name, problem in data_problems(values).items()]
    if not problems:
        try:
            recipe_from_mapping(values, source=str(path))
        except RecipeError as exc:
            problems.append(exc.what + (f" → {exc.fix}" if exc.fix else ""))
    return problems
