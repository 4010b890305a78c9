"""The recipe schema: types, bounds, overrides and the messages a person sees."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.errors import RecipeError
from recipes.schema import (
    FIELDS,
    Recipe,
    describe_fields,
    dump_recipe,
    load_recipe,
    recipe_from_mapping,
)


def build(data: dict, overrides: list[str] | None = None) -> Recipe:
    return recipe_from_mapping(data, source="test.yaml", overrides=overrides)


def test_defaults_validate() -> None:
    assert build({}) == Recipe()


def test_override_types_are_coerced() -> None:
    r = build({}, ["learning_rate=1e-4", "max_steps=30", "tiny=true",
                   "target_modules=[q_proj, v_proj]", "lora_dropout=0.05"])
    assert (r.learning_rate, r.max_steps, r.tiny) == (1e-4, 30, True)
    assert r.target_modules == ["q_proj", "v_proj"]
    assert r.lora_dropout == pytest.approx(0.05)


def test_yaml_style_scientific_string_is_a_float() -> None:
    # PyYAML reads "2e-4" (no dot) as a string; the schema still takes it as a number.
    assert build({"learning_rate": "2e-4"}).learning_rate == pytest.approx(2e-4)


def test_comma_separated_list_override() -> None:
    assert build({}, ["target_modules=q_proj,v_proj"]).target_modules == ["q_proj", "v_proj"]


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("learning_rate=-1", "out of range, must be > 0"),
        ("learning_rate=0", "out of range, must be > 0"),
        ("batch_size=-1", "out of range, must be >= 0"),  # 0 = auto
        ("batch_size=many", "expected an integer or auto"),
        ("lora_r=0", "out of range, must be >= 1"),
        ("lora_r=-3", "out of range, must be >= 1"),
        ("batch_size=two", "expected an integer"),
        ("batch_size=2.5", "expected an integer"),
        ("tiny=maybe", "expected true or false"),
        ("optimizer=adam", "must be one of"),
        ("lora_dropout=1.5", "out of range, must be <= 0.9"),
        ("learning_rate=nan", "expected a finite number"),   # nan passes every < and >
        ("weight_decay=.nan", "expected a finite number"),
        ("max_grad_norm=inf", "expected a finite number"),
    ],
)
def test_bad_override_is_refused(override: str, message: str) -> None:
    with pytest.raises(RecipeError) as info:
        build({}, [override])
    text = info.value.render()
    assert message in text
    assert f"--set {override}" in text, "the error should name where the value came from"
    assert override.split("=")[0] in text, "the error should name the field"


def test_unknown_key_suggests_nearest() -> None:
    with pytest.raises(RecipeError) as info:
        build({"lerning_rate": 1e-4})
    assert "unknown field 'lerning_rate'" in info.value.what
    assert "learning_rate" in info.value.fix


def test_choice_typo_suggests_nearest() -> None:
    with pytest.raises(RecipeError) as info:
        build({"optimizer": "adamw_8bt"})
    assert "adamw_8bit" in info.value.render()


def test_yaml_error_points_at_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nlearning_rate: -1\n", encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert info.value.where == f"{path}:2"


def test_malformed_yaml(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n  lr: [1\n", encoding="utf-8")
    with pytest.raises(RecipeError) as info:
        load_recipe(path)
    assert "malformed YAML" in info.value.what and str(path) in info.value.where


def test_missing_recipe_file(tmp_path: Path) -> None:
    with pytest.raises(RecipeError, match="not found"):
        load_recipe(tmp_path / "nope.yaml")


def test_recipe_must_be_a_mapping(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("- a\n- b\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="mapping"):
        load_recipe(path)


def test_override_without_equals() -> None:
    with pytest.raises(RecipeError, match="not key=value"):
        build({}, ["learning_rate"])


def test_prompt_template_needs_response() -> None:
    with pytest.raises(RecipeError, match="no \\{response\\}"):
        build({"prompt_template": "### Q:\n{instruction}\n"})


def test_split_fractions_leave_training_rows() -> None:
    with pytest.raises(RecipeError, match="leaves almost nothing"):
        build({"val_fraction": 0.5, "test_fraction": 0.45})


def test_dump_round_trips(tmp_path: Path) -> None:
    recipe = build({"name": "x"}, ["learning_rate=3e-4", "columns={response: answer}"])
    path = tmp_path / "resolved.yaml"
    path.write_text(dump_recipe(recipe), encoding="utf-8")
    assert load_recipe(path) == recipe


def test_every_field_has_help_and_group() -> None:
    described = describe_fields()
    assert [f["name"] for f in described] == list(FIELDS)
    for f in described:
        assert f["help"] and f["group"], f"{f['name']} lacks help or group"


def test_a_key_written_twice_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nlearning_rate: 1e-3\nepochs: 1\nlearning_rate: 2e-3\n",
                    encoding="utf-8")
    with pytest.raises(RecipeError, match=r"'learning_rate' is set twice \(lines 2 and 4\)") as info:
        load_recipe(path)
    assert info.value.where == f"{path}:4"


def test_nan_in_yaml_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\nlearning_rate: .nan\n", encoding="utf-8")
    with pytest.raises(RecipeError, match="learning_rate.*finite") as info:
        load_recipe(path)
    assert info.value.where == f"{path}:2"


@pytest.mark.parametrize("body", ["columns: {instruction: q, instruction: a}\n",
                                  "tiny_overrides:\n  max_steps: 3\n  max_steps: 4\n"])
def test_a_key_written_twice_inside_a_mapping_is_refused(tmp_path: Path, body: str) -> None:
    path = tmp_path / "r.yaml"
    path.write_text("name: x\n" + body, encoding="utf-8")
    with pytest.raises(RecipeError, match="is set twice"):
        load_recipe(path)
