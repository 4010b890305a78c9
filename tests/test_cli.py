"""The command line: listing, fast start-up, and bad input refused cleanly.

Every bad input gets one clear message naming the file/field/row, exit code 2, no traceback
(unless --debug), and leaves the runs folder exactly as it was.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from tui.cli import EXIT_BAD_INPUT, main

DEMO = ["--recipe", "demo"]


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


@pytest.fixture()
def existing_runs(runs_dir: Path) -> Path:
    """A runs folder that already holds one (fake, finished) run."""
    old = runs_dir / "20260101-000000-demo"
    (old / "checkpoints" / "checkpoint-5").mkdir(parents=True)
    (old / "recipe.yaml").write_text("name: demo\n", encoding="utf-8")
    finished = ev.Finished(step=5, final_loss=1.0, adapter_dir=str(old / "adapter"), seconds=1.0)
    (old / "events.jsonl").write_text(finished.to_json() + "\n", encoding="utf-8")
    return runs_dir


def refuse(args: list[str], runs: Path, capsys: pytest.CaptureFixture) -> str:
    before = snapshot(runs)
    code = main([*args, "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT, err
    assert err.startswith("error: ") and "Traceback" not in err
    assert snapshot(runs) == before, "a refused command must not touch the runs folder"
    return err


def test_help_does_not_import_torch() -> None:
    code = ("import sys, tui.cli\n"
            "try:\n    tui.cli.main(['--help'])\nexcept SystemExit:\n    pass\n"
            "print('torch' in sys.modules, 'transformers' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "False False"


def test_list_shows_the_demo(capsys: pytest.CaptureFixture) -> None:
    assert main(["--list"]) == 0
    out = capsys.readouterr().out
    assert "demo" in out and "TinyLlama" in out


def test_fields_lists_every_field(capsys: pytest.CaptureFixture, monkeypatch) -> None:
    from recipes.schema import FIELDS

    monkeypatch.setenv("COLUMNS", "250")  # no folding of long field names

    assert main(["--fields"]) == 0
    out = capsys.readouterr().out
    assert all(name in out for name in FIELDS)


def test_unknown_recipe_lists_known(existing_runs, capsys) -> None:
    err = refuse(["--recipe", "dmo"], existing_runs, capsys)
    assert "unknown recipe 'dmo'" in err and "did you mean 'demo'" in err


def test_missing_recipe_file(existing_runs, tmp_path, capsys) -> None:
    err = refuse(["--recipe", str(tmp_path / "mine.yaml")], existing_runs, capsys)
    assert "mine.yaml" in err and "not found" in err


def test_malformed_yaml(existing_runs, tmp_path, capsys) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nlora_r: [8\n", encoding="utf-8")
    err = refuse(["--recipe", str(bad)], existing_runs, capsys)
    assert f"{bad}:" in err and "malformed YAML" in err


@pytest.mark.parametrize(("override", "field"), [
    ("learning_rate=-1e-4", "learning_rate"), ("learning_rate=0", "learning_rate"),
    ("batch_size=many", "batch_size"), ("batch_size=-2", "batch_size"), ("lora_r=0", "lora_r"),
    ("lerning_rate=1e-4", "learning_rate"),
])
def test_bad_values_are_refused(existing_runs, capsys, override, field) -> None:
    err = refuse([*DEMO, "--set", override], existing_runs, capsys)
    assert f"--set {override}" in err and field in err


@pytest.mark.parametrize(("content", "name", "message"), [
    (None, "missing.jsonl", "dataset file not found"),
    ("x", "data.txt", "unknown dataset file type '.txt'"),
    ("", "empty.jsonl", "the dataset is empty"),
    ('{"foo": "q", "bar": "a"}\n', "cols.jsonl", "cannot tell the dataset's layout"),
])
def test_bad_datasets_are_refused(existing_runs, tmp_path, capsys, content, name, message) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content, encoding="utf-8")
    err = refuse([*DEMO, "--set", f"dataset={path}"], existing_runs, capsys)
    assert message in err and str(path) in err


def test_resume_of_a_folder_that_is_not_a_run(existing_runs, tmp_path, capsys) -> None:
    err = refuse(["--resume", str(tmp_path)], existing_runs, capsys)
    assert "not a slothlab run" in err


def test_resume_of_a_missing_folder(existing_runs, tmp_path, capsys) -> None:
    err = refuse(["--resume", str(tmp_path / "nope")], existing_runs, capsys)
    assert "run directory not found" in err


def test_resume_without_checkpoint_leaves_the_run_alone(runs_dir, capsys) -> None:
    from recipes.registry import bundled

    run = runs_dir / "20260101-000000-demo"
    run.mkdir()
    (run / "recipe.yaml").write_text(bundled()["demo"].read_text(encoding="utf-8"), encoding="utf-8")
    (run / "events.jsonl").write_text("", encoding="utf-8")
    err = refuse(["--resume", str(run)], runs_dir, capsys)
    assert "no checkpoint to resume from" in err


def test_resume_of_a_finished_run(existing_runs, capsys) -> None:
    from recipes.registry import bundled

    run = next(existing_runs.iterdir())
    (run / "recipe.yaml").write_text(bundled()["demo"].read_text(encoding="utf-8"),
                                     encoding="utf-8")
    before = snapshot(existing_runs)
    code = main(["--resume", str(run), "--runs-dir", str(existing_runs)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "already finished" in err and "slothlab eval" in err
    assert snapshot(existing_runs) == before


def test_resume_refuses_recipe_changes(existing_runs, capsys) -> None:
    run = next(existing_runs.iterdir())
    err = refuse(["--resume", str(run), "--set", "max_steps=9"], existing_runs, capsys)
    assert "drop --recipe/--set" in err


def test_debug_shows_the_traceback(runs_dir) -> None:
    from recipes.errors import RecipeError

    with pytest.raises(RecipeError):
        main(["--recipe", "dmo", "--debug", "--runs-dir", str(runs_dir)])


def test_backend_unsloth_that_cannot_run_is_a_clear_error(existing_runs, tmp_path) -> None:
    """Without a GPU, unsloth 2026.10.9 runs its CPU backend; with its CPU fallback switched
    off it cannot import, and --backend unsloth says so before anything is written. In a child
    process: importing unsloth here would patch TRL for every later test."""
    import os
    import subprocess
    import sys

    import torch

    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    before = snapshot(existing_runs)
    proc = subprocess.run([sys.executable, "-m", "tui.cli", *DEMO, "--backend", "unsloth",
                           "--runs-dir", str(existing_runs)], cwd=tmp_path, capture_output=True,
                          text=True, timeout=600,
                          env={**os.environ, "UNSLOTH_DISABLE_CPU_FALLBACK": "1",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[1])})
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    assert "--backend unsloth cannot run: import unsloth failed" in proc.stderr
    assert "UNSLOTH_DISABLE_CPU_FALLBACK must be unset" in proc.stderr
    assert snapshot(existing_runs) == before


def test_list_json_is_one_object(capsys: pytest.CaptureFixture) -> None:
    import json

    assert main(["--list", "--json"]) == 0
    listing = json.loads(capsys.readouterr().out)
    demo = next(r for r in listing["recipes"] if r["recipe"] == "demo")
    assert demo["tiny"] is True and demo["vram_gib"] is None
    assert all(r["vram_gib"] > 0 for r in listing["recipes"] if not r["tiny"])


def test_fields_with_a_recipe_shows_its_values(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "250")
    assert main(["--fields", "--recipe", "demo", "--set", "learning_rate=0.00123"]) == 0
    assert "0.00123" in capsys.readouterr().out


def test_fields_with_an_unknown_recipe_is_refused(capsys) -> None:
    assert main(["--fields", "--recipe", "dmeo"]) == EXIT_BAD_INPUT
    assert "unknown recipe 'dmeo'" in capsys.readouterr().err


def test_runs_dir_alone_opens_the_terminal_ui(monkeypatch, tmp_path) -> None:
    import tui.cli as cli

    seen: list[list[str]] = []
    monkeypatch.setattr(cli, "run_tui", lambda argv=None: seen.append(argv) or 0)
    assert main(["--runs-dir", str(tmp_path), "--tiny"]) == 0
    assert seen == [["--runs-dir", str(tmp_path), "--tiny"]]


def test_help_names_the_other_commands(capsys) -> None:
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    assert all(f"slothlab {name}" in out for name in ("check", "eval", "experiment", "tui"))


@pytest.mark.parametrize("kind", ["file", "missing-parent"])
def test_unusable_runs_dir_is_a_clear_error(tmp_path, capsys, kind) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("x", encoding="utf-8")
    runs = blocker if kind == "file" else blocker / "runs"
    code = main([*DEMO, "--tiny", "--runs-dir", str(runs)])
    err = capsys.readouterr().err
    assert code == EXIT_BAD_INPUT and "cannot create a run directory" in err, err
    assert "--runs-dir" in err and blocker.read_text(encoding="utf-8") == "x"


def test_a_failure_the_progress_view_showed_is_not_printed_again(runs_dir, capsys,
                                                                  monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # no folding inside the phrases checked
    code = main([*DEMO, "--tiny", "--set", "max_seq_length=28", "--runs-dir", str(runs_dir)])
    captured = capsys.readouterr()
    assert code == EXIT_BAD_INPUT
    shown = "the response starts after max_seq_length=28 tokens"
    assert shown in captured.out and "--set max_seq_length=" in captured.out
    assert shown not in captured.err, "shown once, by the progress view"


def test_fields_shows_values_with_brackets_as_text(capsys, monkeypatch) -> None:
    monkeypatch.setenv("COLUMNS", "400")
    template = "[INST] {instruction} [/INST] {response}"
    assert main(["--fields", "--recipe", "demo", "--set", f"prompt_template={template}"]) == 0
    assert "[/INST]" in capsys.readouterr().out
