"""Experiment files: the bundled ones load, every variant is validated before anything trains,
and bad input is refused with exit 2, naming the variant and field, leaving nothing behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from recipes.data.ablation import shift_labels_once_more
from recipes.data.types import IGNORE_INDEX, Tokenized
from recipes.errors import RecipeError
from recipes.experiment_spec import (
    MAX_RUNS_WITHOUT_YES,
    bundled_experiments,
    load_experiment,
)
from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe
from tui.experiment_cli import main as experiment_main

EXPERIMENTS = bundled_experiments()


def write(tmp_path: Path, text: str, name: str = "exp.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
@pytest.mark.parametrize("tiny", [False, True], ids=["full", "tiny"])
def test_bundled_experiment_validates(name: str, tiny: bool) -> None:
    experiment = load_experiment(name, tiny=tiny)
    assert experiment.name == name and len(experiment.variants) >= 2
    assert all(v.recipe.tiny == tiny for v in experiment.variants)


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_bundled_experiment_opens_with_its_command(name: str) -> None:
    first = EXPERIMENTS[name].read_text(encoding="utf-8").splitlines()[0]
    assert first == f"# slothlab experiment {name}"


def test_seed001_reproduces_the_write_up_table() -> None:
    variants = {v.name: v.recipe for v in load_experiment("seed001-medqa").variants}
    assert [(r.max_steps, r.learning_rate, r.misalign_labels) for r in variants.values()] == [
        (908, 5e-5, True), (400, 1e-4, True), (400, 2e-4, True), (400, 2e-4, False)]
    base = load_recipe(bundled()["medqa-tinyllama"])
    for recipe in variants.values():  # the shared setup is the recipe's, untouched
        assert (recipe.lora_r, recipe.target_modules, recipe.effective_batch_size) == \
               (base.lora_r, base.target_modules, 32)


def test_tiny_mode_scales_each_variant_and_set_wins_over_everything() -> None:
    tiny = {v.name: v.recipe for v in load_experiment("seed001-medqa", tiny=True).variants}
    assert (tiny["exp001"].max_steps, tiny["exp001"].learning_rate) == (681, 7.5e-4)
    assert (tiny["exp004"].max_steps, tiny["exp004"].learning_rate) == (300, 3e-3)
    assert tiny["exp004"].batch_size == 8, "the recipe's tiny_overrides still apply elsewhere"
    short = load_experiment("seed001-medqa", tiny=True, overrides=["max_steps=30"])
    assert {v.recipe.max_steps for v in short.variants} == {30}


def test_seed000_compares_task_balance_and_seed003_is_a_grid() -> None:
    seed000 = load_experiment("seed000-inkuba-balance")
    assert [v.recipe.task_balance for v in seed000.variants] == ["none", "resample"]
    assert seed000.primary_metric == "zindi_avg"
    grid = load_experiment("seed003-finetome-sweep").variants
    assert {(v.recipe.learning_rate, v.recipe.lora_r) for v in grid} == {
        (lr, r) for lr in (1e-4, 2e-4, 5e-4) for r in (16, 32, 64)}


BASE = "name: t\nrecipe: demo\n"


def refused(path: Path, **kwargs) -> RecipeError:
    with pytest.raises(RecipeError) as info:
        load_experiment(path, **kwargs)
    return info.value


def test_a_bad_value_in_variant_three_names_the_variant_field_and_line(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "variants:\n  a: {lora_r: 8}\n  b: {lora_r: 16}\n"
                 "  c:\n    lora_r: 0\n")
    error = refused(path)
    assert "variant 'c'" in error.where and f"{path}:7" in error.where  # the lora_r line
    assert "lora_r" in error.what and "out of range" in error.what


def test_an_unknown_field_in_a_variant_suggests_the_right_one(tmp_path: Path) -> None:
    error = refused(write(tmp_path, BASE + "variants:\n  a: {lora_r: 8}\n"
                                           "  b: {learning_rat: 1.0e-3}\n"))
    assert "unknown field 'learning_rat'" in error.what and "variant 'b'" in error.where
    assert "learning_rate" in error.fix


def test_a_big_grid_needs_yes(tmp_path: Path) -> None:
    values = ", ".join(str(8 * (i + 1)) for i in range(MAX_RUNS_WITHOUT_YES + 1))
    path = write(tmp_path, BASE + f"vary:\n  lora_r: [{values}]\n")
    error = refused(path)
    assert f"{MAX_RUNS_WITHOUT_YES + 1} runs" in error.what and "--yes" in error.fix
    assert len(load_experiment(path, yes=True).variants) == MAX_RUNS_WITHOUT_YES + 1


def test_identical_overrides_are_refused(tmp_path: Path) -> None:
    error = refused(write(tmp_path, BASE + "variants:\n  a: {learning_rate: 1.0e-3}\n"
                                           "  b: {learning_rate: 0.001}\n"))
    assert "'a' and 'b' have identical overrides" in error.what


def test_a_set_that_makes_variants_equal_is_refused(tmp_path: Path) -> None:
    path = write(tmp_path, BASE + "vary:\n  learning_rate: [1.0e-3, 2.0e-3]\n")
    error = refused(path, overrides=["learning_rate=5e-4"])
    assert "resolve to the same recipe" in error.what


def test_a_base_recipe_that_fails_validation_points_at_its_file(tmp_path: Path) -> None:
    write(tmp_path, "name: broken\nlora_r: -1\n", "broken.yaml")
    error = refused(write(tmp_path, "recipe: broken.yaml\nvariants:\n  a: {}\n  b: {lora_r: 4}\n"))
    assert str(tmp_path / "broken.yaml") in error.where and "lora_r" in error.what


def test_unknown_top_level_keys_and_a_missing_recipe(tmp_path: Path) -> None:
    error = refused(write(tmp_path, BASE + "variant:\n  a: {}\n"))
    assert "unknown key 'variant'" in error.what and "variants" in error.fix
    error = refused(write(tmp_path, "variants:\n  a: {}\n  b: {lora_r: 4}\n", "norecipe.yaml"))
    assert "no base recipe" in error.what


@pytest.mark.parametrize("text", [
    BASE + "variants:\n  a: {lora_r: 8}\n  a: {lora_r: 16}\n",          # a name twice
    BASE + "variants:\n  a: {lora_r: 8}\n  b: {lora_r: 8}\n",           # twins
    BASE + "vary:\n  lora_r: [8, 16]\nvariants:\n  a: {}\n",             # both forms
    BASE + "variants:\n  a: {tiny: true}\n  b: {}\n",                     # tiny per variant
    "recipe: no-such-recipe\nvariants:\n  a: {}\n",                       # unknown recipe
])
def test_bad_input_exits_2_and_trains_nothing(tmp_path: Path, text: str, capsys) -> None:
    runs = tmp_path / "runs"
    code = experiment_main([str(write(tmp_path, text)), "--tiny", "--runs-dir", str(runs)])
    assert code == 2
    assert capsys.readouterr().err.startswith("error: ")
    assert not runs.exists(), "nothing may be created for refused input"


def test_a_bad_set_exits_2(tmp_path: Path, capsys) -> None:
    code = experiment_main(["seed001-medqa", "--tiny", "--set", "lora_r=zero",
                            "--runs-dir", str(tmp_path / "runs")])
    assert code == 2 and "--set lora_r=zero" in capsys.readouterr().err


def test_misalign_labels_is_refused_outside_an_experiment(tmp_path: Path) -> None:
    recipe = load_recipe(bundled()["demo"], overrides=["misalign_labels=true"])
    with pytest.raises(RecipeError, match="only as a variant of an experiment"):
        run(recipe, RunOptions(runs_root=tmp_path / "runs"))
    assert not (tmp_path / "runs").exists()


def test_the_ablation_shifts_training_labels_one_position() -> None:
    ids = np.arange(10, 18, dtype=np.int32)
    labels = np.array([IGNORE_INDEX] * 4 + [14, 15, 16, 17], dtype=np.int32)
    [shifted] = shift_labels_once_more([Tokenized(1, ids, labels, truncated=False)])
    # Position t now holds the label of t+1: a model that shifts again learns token t+2.
    assert shifted.labels.tolist() == [IGNORE_INDEX] * 3 + [14, 15, 16, 17, IGNORE_INDEX]
    assert shifted.input_ids is ids and labels[4] == 14, "the input is left as it was"


def test_the_best_variant_is_marked_by_the_primary_metric_and_ties_are_all_marked() -> None:
    from recipes.experiment_report import mark_best

    def row(name: str, status: str = "finished", **values: float) -> dict:
        return {"variant": name, "status": status, "best": False,
                "metrics": {k: {"finetuned": v} for k, v in values.items()}}

    rows = [row("a", rouge2=0.1, eval_loss=2.0), row("b", rouge2=0.3, eval_loss=1.5),
            row("c", "stopped", rouge2=0.9, eval_loss=0.1)]
    assert mark_best(rows, "rouge2") == "b", "only finished variants compete"
    assert mark_best([dict(r, best=False) for r in rows], "eval_loss") == "b", "lower is better"
    tied = [row("a", rougeL=0.2), row("b", rougeL=0.2), row("c", rougeL=0.1)]
    assert mark_best(tied, "rougeL") == "a, b" and [r["best"] for r in tied] == [True, True, False]
    assert mark_best([row("a")], "rouge2") == "", "no variant has the metric: none is marked"
    all_tied = [dict(r, best=False) for r in tied[:2]]
    assert mark_best(all_tied, "rougeL") == "" and not any(r["best"] for r in all_tied), \
        "every variant ties: none is best"
