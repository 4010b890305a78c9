"""Experiment files: a base recipe and named variants (or a grid), every variant validated by
the recipe schema before anything trains.

    # slothlab experiment seed001-medqa
    name: seed001-medqa
    recipe: medqa-tinyllama          # a bundled recipe name, or a path (relative to this file)
    primary_metric: rouge2           # marks the best variant (default: the recipe's first metric)
    common: {eval_steps: 50}         # optional: overrides every variant gets
    variants:                        # named variants: field -> value overrides, as in a recipe
      exp003: {max_steps: 400, learning_rate: 2.0e-4, misalign_labels: true}
      exp004: {max_steps: 400, learning_rate: 2.0e-4}
    # or a grid, one variant per combination:
    # vary: {learning_rate: [1.0e-4, 2.0e-4], lora_r: [8, 16]}

How a variant's recipe is resolved: the base recipe, then ``common``, then the variant's own
values, then ``--set`` (which every variant gets). In tiny mode the base recipe's tiny_overrides
apply to the fields the experiment leaves alone; a variant's (or common's) own
``tiny_overrides`` apply on top of its values (seed 001 scales its steps and learning rates so).

    from recipes.experiment_spec import load_experiment
    experiment = load_experiment("seed001-medqa", overrides=["max_steps=30"], tiny=True)
"""

from __future__ import annotations

import difflib
import itertools
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from recipes.errors import RecipeError
from recipes.registry import find_recipe
from recipes.schema import (
    METRIC_NAMES,
    Recipe,
    coerce,
    parse_override,
    read_yaml,
    recipe_from_mapping,
)

EXPERIMENTS_DIR = Path(__file__).resolve().parent / "experiments"
MAX_RUNS_WITHOUT_YES = 12  # more runs than this only with --yes (a grid grows fast)
TOP_LEVEL = ("name", "description", "recipe", "primary_metric", "common", "variants", "vary")
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
# Metrics every report has besides the recipe's own (per-task keys such as f1/xnli/swa too).
EXTRA_METRICS = ("eval_loss", "perplexity", "zindi_avg")


@dataclass
class Variant:
    name: str
    overrides: dict[str, Any]  # as the experiment file writes them (type-checked)
    recipe: Recipe  # the resolved recipe this variant trains

    @property
    def folder(self) -> str:
        """A folder name for the variant (grid names hold '=' and ',')."""
        return re.sub(r"[^A-Za-z0-9._=,-]+", "-", self.name)


@dataclass
class Experiment:
    name: str
    description: str
    path: Path  # the experiment file
    recipe_path: Path  # its base recipe
    primary_metric: str
    variants: list[Variant]
    sets: list[str]  # --set, applied to every variant
    tiny: bool

    @property
    def command(self) -> str:
        """The command that runs (and, run again, continues) this experiment."""
        parts = ["slothlab", "experiment", _short(self.path)]
        if self.tiny:
            parts.append("--tiny")
        for text in self.sets:
            parts += ["--set", text if " " not in text else repr(text)]
        return " ".join(parts)


def bundled_experiments() -> dict[str, Path]:
    """Bundled experiment names -> files (recipes/experiments/*.yaml)."""
    return {p.stem: p for p in sorted(EXPERIMENTS_DIR.glob("*.yaml"))}


def find_experiment(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.is_file():
            raise RecipeError("experiment file not found", where=str(path),
                              fix="check the path, or `slothlab experiment --list` for the "
                                  "bundled experiments")
        return path
    known = bundled_experiments()
    if name_or_path in known:
        return known[name_or_path]
    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise RecipeError(f"unknown experiment '{name_or_path}'", where="slothlab experiment",
                      fix=f"{hint}bundled: {', '.join(known)} (or a path to a .yaml file)")


def _short(path: Path) -> str:
    """The bundled name when the file is bundled (what a person types), else the path."""
    if path.resolve().parent == EXPERIMENTS_DIR and path.suffix == ".yaml":
        return path.stem
    return str(path)


def nested_lines(path: Path) -> dict[tuple[str, ...], int]:
    """The 1-based line of every mapping key, by its key path (('variants', 'exp3', 'lora_r'))."""
    node = yaml.compose(path.read_text(encoding="utf-8"), Loader=yaml.SafeLoader)
    lines: dict[tuple[str, ...], int] = {}

    def walk(node: Any, prefix: tuple[str, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                here = (*prefix, str(key.value))
                lines[here] = key.start_mark.line + 1
                walk(value, here)

    walk(node, ())
    return lines


def _nearest(key: str, names: tuple[str, ...]) -> str:
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'? " if close else ""


class _Where:
    """Error locations inside the experiment file: 'file:line: variant 'x''."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lines = nested_lines(path)

    def __call__(self, *keys: str, label: str = "") -> str:
        for depth in range(len(keys), 0, -1):
            line = self.lines.get(tuple(keys[:depth]))
            if line:
                return f"{self.path}:{line}" + (f": {label}" if label else "")
        return str(self.path) + (f": {label}" if label else "")


def _mapping(value: Any, where: str, what: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise RecipeError(f"{what} must be a mapping of field: value", where=where,
                          fix="write it as `field: value` lines indented under it")
    return {str(k): v for k, v in value.items()}


def _overrides(raw: Any, where: _Where, keys: tuple[str, ...], label: str) -> dict[str, Any]:
    """A variant's (or common's) overrides, each type-checked against the recipe schema."""
    out = {}
    for field, value in _mapping(raw, where(*keys, label=label), label).items():
        if field in ("name", "tiny"):
            raise RecipeError(f"'{field}' cannot differ between variants", where=where(
                *keys, field, label=label), fix="the experiment names its variants; tiny mode "
                "is chosen for all of them with --tiny")
        out[field] = coerce(field, value, where=where(*keys, field, label=label))
    return out


def _grid(raw: Any, where: _Where) -> list[tuple[str, dict[str, Any]]]:
    axes = _mapping(raw, where("vary"), "vary")
    if not axes:
        raise RecipeError("vary has no fields", where=where("vary"),
                          fix="give each field a list of values, e.g. vary: {lora_r: [8, 16]}")
    values: dict[str, list[Any]] = {}
    for field, options in axes.items():
        here = where("vary", field, label=f"vary.{field}")
        if not isinstance(options, list) or not options:
            raise RecipeError(f"vary.{field} must be a non-empty list of values", where=here,
                              fix=f"e.g. vary: {{{field}: [a, b]}}")
        if field in ("name", "tiny"):
            raise RecipeError(f"'{field}' cannot be varied", where=here,
                              fix="vary training fields (learning_rate, lora_r, max_steps, ...)")
        values[field] = [coerce(field, v, where=here) for v in options]
    variants = []
    for combo in itertools.product(*values.values()):
        overrides = dict(zip(values, combo, strict=True))
        name = ",".join(f"{k}={_show(v)}" for k, v in overrides.items())
        variants.append((name, overrides))
    return variants


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return "[" + ",".join(map(str, value)) + "]"
    return str(value)


def describe_overrides(overrides: dict[str, Any]) -> str:
    """``learning_rate=0.0002 lora_r=16`` (tiny_overrides shown as tiny.field=value)."""
    parts = []
    for key, value in overrides.items():
        if key == "tiny_overrides":
            parts += [f"tiny.{k}={v}" for k, v in value.items()]
        else:
            parts.append(f"{key}={_show(value)}")
    return " ".join(parts) or "(the base recipe)"


def _resolve(base: dict[str, Any], common: dict[str, Any], own: dict[str, Any],
             sets: list[str], source: str) -> Recipe:
    """The variant's recipe: base ← common ← own ← --set; tiny_overrides as the module says."""
    set_by_experiment = set(common) | set(own)
    tiny = {k: v for k, v in (base.get("tiny_overrides") or {}).items()
            if k not in set_by_experiment}
    tiny.update(common.get("tiny_overrides", {}))
    tiny.update(own.get("tiny_overrides", {}))
    data = {**base, **common, **own, "tiny_overrides": tiny}
    return recipe_from_mapping(data, source=source, overrides=sets)


def _primary(raw: Any, where: _Where) -> str:
    if raw is None:
        return ""
    name = str(raw)
    if name not in (*METRIC_NAMES, *EXTRA_METRICS) and "/" not in name:
        raise RecipeError(f"unknown primary_metric '{name}'", where=where("primary_metric"),
                          fix=_nearest(name, (*METRIC_NAMES, *EXTRA_METRICS))
                          + f"choose from {', '.join((*METRIC_NAMES, *EXTRA_METRICS))} or a "
                            "per-task key such as f1/xnli/swa")
    return name


def load_experiment(name_or_path: str | Path, *, overrides: list[str] | None = None,
                    tiny: bool = False, yes: bool = False) -> Experiment:
    """The validated experiment; RecipeError (exit 2) on any bad input, before anything runs."""
    path = find_experiment(str(name_or_path))
    data, _ = read_yaml(path)  # duplicate keys and malformed YAML refused with their line
    where = _Where(path)
    if not isinstance(data, dict):
        raise RecipeError("an experiment must be a mapping (recipe:, variants: or vary:)",
                          where=str(path), fix="see recipes/experiments/ for the layout")
    for key in data:
        if key not in TOP_LEVEL:
            raise RecipeError(f"unknown key '{key}' in the experiment", where=where(str(key)),
                              fix=_nearest(str(key), TOP_LEVEL) + "an experiment has "
                              f"{', '.join(TOP_LEVEL)}; recipe fields go under common: or a "
                              "variant")
    if not data.get("recipe"):
        raise RecipeError("the experiment names no base recipe", where=str(path),
                          fix="add `recipe: NAME` (a bundled recipe) or `recipe: path/to.yaml`")
    if ("variants" in data) == ("vary" in data):
        raise RecipeError("give either variants: (named overrides) or vary: (a grid)",
                          where=str(path), fix="one of the two, not both or neither")
    name = str(data.get("name") or path.stem)
    if not NAME_RE.match(name):
        raise RecipeError(f"experiment name '{name}' is not a folder name", where=where("name"),
                          fix="letters, digits, '.', '_' and '-' only")
    sets = [*(overrides or []), *(["tiny=true"] if tiny else [])]
    for text in sets:  # a bad --set fails once, not once per variant
        key, value = parse_override(text)
        coerce(key, value, where=f"--set {text}")

    recipe_ref = str(data["recipe"])
    local = (path.parent / recipe_ref).expanduser()
    recipe_path = find_recipe(str(local) if local.is_file() else recipe_ref)
    base, base_lines = read_yaml(recipe_path)
    recipe_from_mapping(base, source=str(recipe_path), overrides=sets, lines=base_lines)

    common = _overrides(data.get("common"), where, ("common",), "common")
    if "vary" in data:
        named = _grid(data["vary"], where)
    else:
        entries = _mapping(data["variants"], where("variants"), "variants")
        if not entries:
            raise RecipeError("variants is empty", where=where("variants"),
                              fix="name at least two variants, each with its overrides")
        named = []
        for vname, raw in entries.items():
            if not NAME_RE.match(vname):
                raise RecipeError(f"variant name '{vname}' is not a folder name",
                                  where=where("variants", vname),
                                  fix="letters, digits, '.', '_' and '-' only")
            named.append((vname, _overrides(raw, where, ("variants", vname),
                                            f"variant '{vname}'")))
    if len(named) > MAX_RUNS_WITHOUT_YES and not yes:
        raise RecipeError(
            f"this experiment trains {len(named)} runs, more than {MAX_RUNS_WITHOUT_YES}",
            where=where("vary" if "vary" in data else "variants"),
            fix="pass --yes to run them all one after another, or trim the grid")
    _refuse_twins(named, where)

    variants = []
    for vname, own in named:
        label = f"variant '{vname}'"
        source = where("variants", vname, label=label) if "variants" in data else \
            where("vary", label=label)
        variants.append(Variant(vname, own, _resolve(base, common, own, sets, source)))
    _refuse_same_recipes(variants, path)
    return Experiment(name=name, description=str(data.get("description") or ""), path=path,
                      recipe_path=recipe_path, primary_metric=_primary(
                          data.get("primary_metric"), where),
                      variants=variants, sets=list(overrides or []), tiny=tiny)


def _refuse_twins(named: list[tuple[str, dict[str, Any]]], where: _Where) -> None:
    seen: dict[str, str] = {}
    for vname, own in named:
        key = repr(sorted(own.items()))
        if key in seen:
            raise RecipeError(
                f"variants '{seen[key]}' and '{vname}' have identical overrides "
                f"({describe_overrides(own)})", where=where("variants", vname),
                fix="change or remove one of them: two identical runs compare nothing")
        seen[key] = vname


def _refuse_same_recipes(variants: list[Variant], path: Path) -> None:
    """Different overrides can still train the same recipe (a --set for every variant over the
    field they differ in, a tiny_override): refuse that too."""
    seen: dict[str, str] = {}
    for v in variants:
        key = repr(sorted((k, repr(x)) for k, x in v.recipe.to_dict().items()
                          if k != "tiny_overrides"))
        if key in seen:
            raise RecipeError(
                f"variants '{seen[key]}' and '{v.name}' resolve to the same recipe",
                where=str(path),
                fix="a --set (or tiny mode's tiny_overrides) overrides the field they differ "
                    "in; drop that --set, or give the variants their own tiny_overrides")
        seen[key] = v.name
