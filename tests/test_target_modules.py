"""target_modules is checked against the model's layers in YAML, --set and the Configure form,
and the error names the layers that exist; models slothlab does not know are not refused."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from recipes.errors import RecipeError
from recipes.models import linear_modules_of, unknown_target_modules
from recipes.registry import bundled
from recipes.schema import load_recipe

LLAMA = "q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
LFM2 = "q_proj, k_proj, v_proj, out_proj, in_proj, w1, w2, w3"


def test_a_bogus_module_in_set_is_refused_naming_the_real_ones() -> None:
    with pytest.raises(RecipeError) as caught:
        load_recipe(bundled()["demo"], overrides=["target_modules=[q_proj,qkv_proj]"])
    error = caught.value
    assert "qkv_proj: no such layer in TinyLlama/TinyLlama-1.1B-Chat-v1.0" in error.what
    assert LLAMA in error.fix


def test_llama_names_on_lfm2_are_refused_in_yaml(tmp_path: Path) -> None:
    text = bundled()["saudial-lfm2"].read_text(encoding="utf-8")
    path = tmp_path / "lfm2.yaml"
    path.write_text(text.replace("target_modules: [q_proj, v_proj]",
                                 "target_modules: [q_proj, o_proj, gate_proj]"), encoding="utf-8")
    with pytest.raises(RecipeError) as caught:
        load_recipe(path)
    assert "o_proj, gate_proj: no such layer in LiquidAI/LFM2-1.2B" in caught.value.what
    assert LFM2 in caught.value.fix
    assert str(path) in caught.value.where


@pytest.mark.parametrize("modules", [["all-linear"], ["self_attn.q_proj", "mlp.down_proj"],
                                     ["q_proj", "lm_head"]])
def test_what_peft_accepts_passes(modules: list[str]) -> None:
    assert unknown_target_modules("TinyLlama/TinyLlama-1.1B-Chat-v1.0", modules) == []


def test_a_model_slothlab_does_not_know_is_not_refused() -> None:
    assert linear_modules_of("someone/brand-new-model") is None
    assert unknown_target_modules("someone/brand-new-model", ["anything"]) == []
    recipe = load_recipe(bundled()["demo"], overrides=["model=someone/brand-new-model",
                                                       "target_modules=[anything]"])
    assert recipe.target_modules == ["anything"]


def test_a_local_folder_is_checked_through_its_config_model_type(tmp_path: Path) -> None:
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "lfm2"}), encoding="utf-8")
    assert unknown_target_modules(str(tmp_path), ["o_proj", "w1"]) == ["o_proj"]
