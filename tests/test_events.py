"""The event schema round-trips through JSON, and readers survive a torn last line."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from recipes import events as ev

SAMPLES: list[ev.Event] = [
    ev.RunStarted(run_dir="runs/x", recipe="demo", backend="reference",
                  backend_reason="no CUDA device", device="CPU", tiny=True, resumed_from_step=4,
                  pid=12),
    ev.Preflight(splits={"train": 8, "val": 1, "test": 1}, tokens_min=3, tokens_median=5.5,
                 tokens_max=9, trained_token_share=0.25, truncated=1, no_trained_tokens=0,
                 max_seq_length=16, total_steps=10, notes=["skipped 1 row"]),
    ev.Step(step=3, total_steps=10, epoch=0.3, loss=2.5, learning_rate=1e-4, grad_norm=None,
            tokens_per_second=99.5, memory=ev.Memory("rss", 100.0, 120.0, 24000.0)),
    ev.Eval(step=3, loss=2.0, perplexity=7.39,
            samples=[ev.Sample(prompt="p", reference="r", output="o — ü 漢字")]),
    ev.Checkpoint(step=3, path="runs/x/checkpoints/checkpoint-3"),
    ev.Metrics(stage="finetuned", values={"rouge1": 0.5}),
    ev.Oom(step=5, phase="train", changes={"batch_size": [4, 2],
                                           "gradient_accumulation_steps": [8, 16]},
           message="batch 4→2, accumulation 8→16 (effective batch 32)", resume_step=4),
    ev.Finished(step=10, final_loss=1.0, adapter_dir="runs/x/adapter", seconds=3.2),
    ev.Stopped(step=5, checkpoint=None, resume_command="slothlab --resume runs/x"),
    ev.Failed(error="boom", advice="do this", step=None),
    ev.ExperimentStarted(experiment="seed001-medqa", experiment_dir="runs/seed001-medqa-tiny",
                         tiny=True, primary_metric="rouge2",
                         variants=[{"name": "exp001", "overrides": {"max_steps": 908},
                                    "status": "pending"}],
                         command="slothlab experiment seed001-medqa --tiny", pid=12),
    ev.VariantEnded(variant="exp001", status="finished", run_dir="runs/x",
                    row={"variant": "exp001", "steps": 30}, skipped=True, best="exp001"),
    ev.ExperimentEnded(status="stopped", experiment_dir="runs/e", report="runs/e/experiment.md",
                       best="", resume_command="slothlab experiment e --resume"),
]


def test_every_event_type_has_a_sample() -> None:
    assert {e.type for e in SAMPLES} == set(ev.EVENT_TYPES)


@pytest.mark.parametrize("event", SAMPLES, ids=lambda e: e.type)
def test_round_trip(event: ev.Event) -> None:
    line = event.to_json()
    assert "\n" not in line
    back = ev.parse_event(line)
    assert back == event
    assert json.loads(line)["type"] == event.type


def test_unknown_fields_are_ignored() -> None:
    data = SAMPLES[4].to_dict() | {"added_in_a_later_version": 1}
    assert ev.event_from_dict(data) == SAMPLES[4]


def test_writer_appends_echoes_and_notifies(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    echo = io.StringIO()
    seen: list[ev.Event] = []
    writer = ev.EventWriter(path, echo=echo)
    writer.subscribe(seen.append)
    for event in SAMPLES:
        writer.emit(event)
    writer.close()
    assert ev.read_events(path) == SAMPLES
    assert echo.getvalue() == path.read_text(encoding="utf-8")
    assert seen == SAMPLES


def test_read_events_skips_a_torn_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text(SAMPLES[0].to_json() + "\n" + SAMPLES[2].to_json()[:20], encoding="utf-8")
    assert ev.read_events(path) == [SAMPLES[0]]


def test_memory_label_says_what_is_measured() -> None:
    assert ev.Memory("vram", 1, 1, 1).label == "VRAM"
    assert ev.Memory("rss", 1, 1, 1).label == "RAM (RSS)"


def test_events_module_imports_no_torch() -> None:
    import subprocess
    import sys

    code = "import sys, recipes.events, recipes.schema; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("line", ["42", "null", "[1, 2]", '"text"'])
def test_json_that_is_not_an_object_is_not_an_event(line: str) -> None:
    with pytest.raises(ValueError):
        ev.parse_event(line)


def test_a_variant_tag_is_written_only_when_set(tmp_path: Path) -> None:
    plain = ev.Checkpoint(step=3, path="p")
    assert "variant" not in plain.to_dict(), "plain runs' lines stay as they were"
    writer = ev.EventWriter(tmp_path / "events.jsonl", variant="exp004")
    writer.emit(ev.Checkpoint(step=3, path="p"))
    writer.close()
    [back] = ev.read_events(tmp_path / "events.jsonl")
    assert back.variant == "exp004" and json.loads(back.to_json())["variant"] == "exp004"


def test_a_line_written_before_variants_existed_parses() -> None:
    old = '{"type":"step","time":1.0,"step":1,"total_steps":2,"epoch":0.5,"loss":2.0,' \
          '"learning_rate":0.001,"grad_norm":null,"tokens_per_second":10.0,"memory":null}'
    assert ev.parse_event(old).variant == ""


def test_a_writer_without_a_path_notifies_and_writes_nothing(tmp_path: Path) -> None:
    """Ranks > 0 of a torchrun launch: events reach their listeners, no file, no echo."""
    seen: list[ev.Event] = []
    writer = ev.EventWriter(None)
    writer.subscribe(seen.append)
    writer.emit(SAMPLES[0])
    writer.close()
    assert seen == [SAMPLES[0]] and list(tmp_path.iterdir()) == []


def test_a_reader_that_predates_oom_events_skips_them(tmp_path: Path, monkeypatch) -> None:
    oom = next(e for e in SAMPLES if e.type == "oom")
    path = tmp_path / "events.jsonl"
    path.write_text("\n".join(e.to_json() for e in (SAMPLES[0], oom, SAMPLES[2])) + "\n")
    monkeypatch.setattr(ev, "EVENT_TYPES", {k: v for k, v in ev.EVENT_TYPES.items() if k != "oom"})
    assert [e.type for e in ev.read_events(path)] == ["run_started", "step"]
