"""Finding recipes: a bundled name (``demo``) or a path to a YAML file.

    from recipes.registry import find_recipe, bundled
    path = find_recipe("demo")            # recipes/configs/demo.yaml
"""

from __future__ import annotations

from pathlib import Path

from recipes.errors import RecipeError

CONFIG_DIR = Path(__file__).resolve().parent / "configs"


def bundled() -> dict[str, Path]:
    """Bundled recipe names -> files, sorted by name."""
    return {p.stem: p for p in sorted(CONFIG_DIR.glob("*.yaml"))}


def find_recipe(name_or_path: str) -> Path:
    path = Path(name_or_path).expanduser()
    if path.suffix in (".yaml", ".yml") or path.exists() or "/" in name_or_path:
        if not path.exists():
            raise RecipeError("recipe file not found", where=str(path),
                              fix="check the path, or run `slothlab --list` for bundled recipes")
        return path
    known = bundled()
    if name_or_path in known:
        return known[name_or_path]
    import difflib

    close = difflib.get_close_matches(name_or_path, known, n=1)
    hint = f"did you mean '{close[0]}'? " if close else ""
    raise RecipeError(f"unknown recipe '{name_or_path}'", where="--recipe",
                      fix=f"{hint}known recipes: {', '.join(known)} (or a path to a .yaml file)")
