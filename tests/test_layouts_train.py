"""Each layout trains: `slothlab --recipe demo --set dataset=FILE` (tiny mode, two steps).

Nothing else is set: the demo recipe says `dataset_format: auto`, so the file's layout is
detected, and the run's preflight names it. Each case is a real subprocess run, as a user
would type it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.layout_files import LAYOUTS, alpaca_rows, write_layout, write_rows

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


def slothlab(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tui.cli", *args], cwd=cwd, capture_output=True,
                          text=True, timeout=600,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                               "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                               "SLOTHLAB_CACHE": str(cwd / "cache"), "HOME": str(cwd)})


def events(runs: Path) -> list[dict]:
    [run] = list(runs.iterdir())
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


@pytest.mark.parametrize("layout", list(LAYOUTS))
def test_each_layout_trains_two_steps(tmp_path: Path, layout: str) -> None:
    path = write_layout(layout, tmp_path / "mine")
    out = slothlab("--recipe", "demo", "--set", f"dataset={path}", "--set", "max_steps=2",
                   "--runs-dir", str(tmp_path / "runs"), "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    stream = events(tmp_path / "runs")
    preflight = next(e for e in stream if e["type"] == "preflight")
    assert f"read as {layout}" in preflight["notes"][0]
    steps = [e for e in stream if e["type"] == "step"]
    assert steps and steps[-1]["step"] == 2
    assert stream[-1]["type"] == "finished"


def test_following_a_refusals_advice_makes_the_run_start(tmp_path: Path) -> None:
    rows = alpaca_rows()
    for i in (2, 5, 9):
        rows[i]["output"] = ""
    path = write_rows(tmp_path / "answers.jsonl", rows)
    runs = tmp_path / "runs"
    args = ["--recipe", "demo", "--set", f"dataset={path}", "--set", "max_steps=2",
            "--runs-dir", str(runs)]
    refused = slothlab(*args, cwd=tmp_path)
    assert refused.returncode == 2, refused.stderr
    assert not runs.exists() or not any(runs.iterdir()), "a refused run writes nothing"
    advice = refused.stderr.split("--set ")[-1].split()[0]  # the last --set in the fix line
    assert advice == "max_dropped_fraction=0.25", refused.stderr
    started = slothlab(*args, "--set", advice, "--json", cwd=tmp_path)
    assert started.returncode == 0, started.stderr[-3000:]
    preflight = next(e for e in events(runs) if e["type"] == "preflight")
    assert any("3 empty answer (lines 3, 6, 10)" in n for n in preflight["notes"])
