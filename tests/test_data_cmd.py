"""`slothlab data`: the preflight and examples as the model sees them, without training."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.layout_files import write_layout
from tui.cli import main


@pytest.fixture(autouse=True)
def _cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLOTHLAB_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)

    def no_weights(*args, **kwargs):
        raise AssertionError("slothlab data must not load model weights")

    monkeypatch.setattr("transformers.AutoModelForCausalLM.from_pretrained", no_weights)


def data(capsys: pytest.CaptureFixture, *args: str) -> tuple[int, str, str]:
    code = main(["data", "--recipe", "demo", *args])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_preview_of_your_own_file(tmp_path: Path, capsys) -> None:
    path = write_layout("alpaca", tmp_path)
    code, out, err = data(capsys, "--set", f"dataset={path}", "-n", "2", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["layout"] == "alpaca" and report["tiny"] and report["source"] == str(path)
    assert report["preflight"]["examples"] == 12
    assert report["notes"][0].startswith("dataset_format auto: read as alpaca")
    first = report["examples"][0]
    assert first["where"] == "line 1"
    trained = [p["text"] for p in first["parts"] if p["trained"]]
    assert trained == ["Hello! Ask me a sum.</s>", "0 plus 3 is 3.</s>"]
    assert sum(p["tokens"] for p in first["parts"]) == first["tokens"]
    assert sum(p["tokens"] for p in first["parts"] if p["trained"]) == first["trained_tokens"]
    text = "".join(p["text"] for p in first["parts"])
    assert text.startswith("<s><|system|>\nAnswer briefly.</s>\n<|user|>\nHi!</s>")
    assert not (tmp_path / "runs").exists(), "a preview writes no run"


def test_piped_output_marks_the_trained_text(capsys) -> None:
    code, out, _ = data(capsys, "-n", "1")
    assert code == 0
    assert "trained text between [[ and ]]" in out
    assert out.count("[[") == out.count("]]") >= 1
    assert "parts:" in out and " trained" in out and "sharegpt" in out


def test_a_refusal_exits_2_and_its_advice_works(capsys) -> None:
    code, out, err = data(capsys, "--set", "max_seq_length=16", "--json")
    assert code == 2
    error = json.loads(out)["error"]
    assert "the response starts after max_seq_length=16 tokens" in error["what"]
    assert err.startswith("error: ")
    advice = error["fix"].split("--set ")[1].split()[0]
    code, out, err = data(capsys, "--set", advice, "--json")
    assert code == 0, err
    assert json.loads(out)["preflight"]["max_seq_length"] == int(advice.split("=")[1])


def test_plain_text_preview_shows_packed_blocks(tmp_path: Path, capsys) -> None:
    path = write_layout("text", tmp_path)
    code, out, err = data(capsys, "--set", f"dataset={path}", "--set", "max_seq_length=64",
                          "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["layout"] == "text" and report["preflight"]["packed"]["block"] == 64
    block = report["examples"][0]
    assert block["tokens"] == 64 == block["trained_tokens"]
    assert [p["trained"] for p in block["parts"]] == [True]
