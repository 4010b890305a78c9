"""Every bundled recipe loads and validates, and opens with the command that runs it."""

from __future__ import annotations

import pytest

from recipes.registry import bundled
from recipes.schema import load_recipe

CONFIGS = bundled()


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_validates(name: str) -> None:
    recipe = load_recipe(CONFIGS[name])
    assert recipe.name == name, "the recipe's name field should match its file name"


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_header_is_the_command(name: str) -> None:
    first = CONFIGS[name].read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# slothlab --recipe {name}" or first.startswith(f"# slothlab --recipe {name} ")


def test_demo_is_tiny_and_qlora() -> None:
    demo = load_recipe(CONFIGS["demo"])
    assert demo.tiny and demo.load_in_4bit and demo.optimizer == "adamw_8bit"
