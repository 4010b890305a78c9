"""`slothlab export` refusing bad input: one clear error, exit 2, nothing left behind.

No adapter (a stopped run: its latest checkpoint is offered, and --checkpoint exports it), a run
that never trained, an unknown --to, a full disk (the free-space probe patched; and ENOSPC in
the middle of writing), Ctrl-C, a k-quant without llama-quantize, a folder that is not an
export, and a model whose tokenizer llama.cpp's converter refuses (the real converter).
"""

from __future__ import annotations

import errno
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from recipes.export import ExportError, plan_export, run_export
from recipes.rundir import ADAPTER, CHECKPOINTS
from tests.export_runs import make_run
from tests.helpers import whole_checkpoint
from tui.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINYLLAMA = "TinyLlama/TinyLlama-1.1B-Chat-v1.0"


@pytest.fixture(scope="module")
def finished(tmp_path_factory: pytest.TempPathFactory, tiny_cache: Path) -> Path:
    return make_run(tmp_path_factory.mktemp("runs"), TINYLLAMA, tiny_cache)


@pytest.fixture()
def run_dir(finished: Path, tmp_path: Path) -> Path:
    """A private copy of the finished run (tests change it)."""
    copy = tmp_path / finished.name
    shutil.copytree(finished, copy)
    return copy


def _nothing_written(run_dir: Path) -> bool:
    export = run_dir / "export"
    return not export.exists() or not any(export.iterdir())


def test_unknown_target(run_dir: Path, capsys) -> None:
    assert main(["export", str(run_dir), "--to", "onnx"]) == 2
    err = capsys.readouterr().err
    assert "unknown export target 'onnx'" in err and "merged, gguf, ollama" in err


def test_a_type_the_target_cannot_write(run_dir: Path, capsys) -> None:
    assert main(["export", str(run_dir), "--to", "merged", "--dtype", "q8_0"]) == 2
    assert "--to merged cannot write q8_0" in capsys.readouterr().err


def test_a_stopped_run_offers_its_latest_checkpoint(run_dir: Path, capsys) -> None:
    checkpoint = run_dir / CHECKPOINTS / "checkpoint-2"
    shutil.move(run_dir / ADAPTER, checkpoint)
    whole_checkpoint(checkpoint)  # what the trainer leaves: its state files and the marker
    assert main(["export", str(run_dir), "--to", "merged"]) == 2
    err = capsys.readouterr().err
    assert "no final adapter" in err and f"--checkpoint {checkpoint}" in err
    assert _nothing_written(run_dir)
    assert main(["export", str(run_dir), "--to", "merged", "--checkpoint", str(checkpoint)]) == 0
    out = run_dir / "export" / "merged-bf16-checkpoint-2"
    assert (out / "model.safetensors").is_file()
    assert "checkpoint-2" in json.loads((out / "slothlab_export.json").read_text())["adapter"]


def test_a_run_that_never_trained(run_dir: Path) -> None:
    shutil.rmtree(run_dir / ADAPTER)
    with pytest.raises(ExportError) as info:
        plan_export(run_dir, "gguf")
    assert "no checkpoint" in info.value.what and "--resume" in info.value.fix


def test_a_full_disk_is_refused_before_writing(run_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr("recipes.export.free_bytes", lambda path: 5 * 2**20)
    plan = plan_export(run_dir, "merged")
    with pytest.raises(ExportError) as info:
        run_export(plan)
    assert info.value.what.startswith(f"disk full at {plan.out.parent}: 5 MB free, needs about ")
    assert _nothing_written(run_dir)


def test_a_disk_that_fills_up_while_writing(run_dir: Path, monkeypatch) -> None:
    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr("recipes.export._write_marker", no_space)
    with pytest.raises(ExportError) as info:
        run_export(plan_export(run_dir, "merged"))
    assert info.value.what.startswith("disk full at ") and "MB free" in info.value.what
    assert _nothing_written(run_dir), "the half-written folder is removed"


def test_ctrl_c_leaves_nothing(run_dir: Path, monkeypatch, capsys) -> None:
    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr("recipes.export.convert", interrupted)
    assert main(["export", str(run_dir), "--to", "gguf"]) == 130
    assert "nothing was written" in capsys.readouterr().err
    assert _nothing_written(run_dir)


def test_k_quants_need_llama_quantize(run_dir: Path, monkeypatch) -> None:
    monkeypatch.setattr("recipes.to_gguf.quantize_tool", lambda: None)
    with pytest.raises(ExportError) as info:
        plan_export(run_dir, "gguf", "q4_k_m")
    f16 = run_dir / "export" / "gguf-f16" / "tinyllama-1.1b-chat-v1.0-f16.gguf"
    assert "llama-quantize, which is not on PATH" in info.value.what
    assert str(f16) in info.value.fix and "Q4_K_M" in info.value.fix
    assert "cmake" in info.value.fix


def test_a_folder_that_is_not_an_export_is_never_replaced(run_dir: Path, tmp_path: Path) -> None:
    mine = tmp_path / "my-models"
    mine.mkdir()
    (mine / "notes.txt").write_text("keep me")
    with pytest.raises(ExportError) as info:
        plan_export(run_dir, "merged", out=mine)
    assert "not a slothlab export" in info.value.what
    assert (mine / "notes.txt").read_text() == "keep me"


def test_pre_quantised_bases_merge_into_their_16_bit_original(run_dir: Path) -> None:
    from recipes.rundir import RECIPE_FILE
    from recipes.schema import dump_recipe, load_recipe

    recipe = load_recipe(run_dir / RECIPE_FILE)
    recipe.tiny, recipe.model = False, "unsloth/Llama-3.2-3B-Instruct-bnb-4bit"
    (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe))
    plan = plan_export(run_dir, "merged")
    assert plan.base == "unsloth/Llama-3.2-3B-Instruct"
    assert any("pre-quantised" in note for note in plan.notes)
    assert any("4-bit (NF4) base" in note for note in plan.notes)


@pytest.mark.slow
def test_a_tokenizer_the_converter_refuses_is_one_clear_error(tmp_path: Path,
                                                              tiny_cache: Path) -> None:
    """A real-mode run on a local model folder with a home-made byte-level BPE tokenizer: the
    real converter refuses it, and the export says so in one message."""
    from recipes.data.prepare import load_examples
    from recipes.tiny import build_tiny_model, tokenizer_corpus
    from tests.export_runs import tiny_recipe

    recipe = tiny_recipe("LiquidAI/LFM2-1.2B")
    examples, _, _ = load_examples(recipe, recipe.dataset)
    folder = tmp_path / "my-lfm2"
    shutil.copytree(build_tiny_model(recipe, tokenizer_corpus(recipe, examples), tiny_cache),
                    folder)
    run_dir = make_run(tmp_path / "runs", str(folder), tiny_cache, tiny=False,
                       target_modules=recipe.target_modules)
    with pytest.raises(ExportError) as info:
        run_export(plan_export(run_dir, "gguf"))
    assert f"does not recognise the BPE tokenizer of {folder}" in info.value.what
    assert "--to merged works" in info.value.fix
    assert _nothing_written(run_dir)


def test_json_mode_reports_a_refusal_as_a_line(tmp_path: Path) -> None:
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "export", str(tmp_path / "nope"),
                           "--to", "gguf", "--json"], capture_output=True, text=True, cwd=ROOT,
                          timeout=120)
    assert proc.returncode == 2
    [line] = proc.stdout.splitlines()
    message = json.loads(line)
    assert message["type"] == "export_failed" and message["what"] == "run directory not found"
