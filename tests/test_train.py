"""End to end on a CPU: the demo trains, stops on SIGINT, resumes, and is reproducible."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.registry import bundled
from recipes.rundir import checkpoints
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe

pytestmark = pytest.mark.slow
SLOTHLAB = [sys.executable, "-m", "tui.cli"]


def env_with_cache(cache: Path) -> dict[str, str]:
    return {**os.environ, "SLOTHLAB_CACHE": str(cache), "PYTHONUNBUFFERED": "1"}


def steps(run_dir: Path) -> list[ev.Step]:
    return [e for e in ev.read_events(run_dir / "events.jsonl") if isinstance(e, ev.Step)]


def test_demo_finishes_under_two_minutes(demo_run) -> None:
    _, seconds, proc = demo_run
    assert seconds < 120, f"demo took {seconds:.0f} s"
    assert "finished" in proc.stdout and "adapter" in proc.stdout


def test_demo_run_directory(demo_run) -> None:
    run_dir, _, _ = demo_run
    assert load_recipe(run_dir / "recipe.yaml") == load_recipe(bundled()["demo"])
    assert checkpoints(run_dir), "no checkpoint saved"
    assert (run_dir / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / "adapter_config.json").is_file()
    kinds = [e.type for e in ev.read_events(run_dir / "events.jsonl")]
    assert kinds[0] == "run_started" and kinds[1] == "preflight" and kinds[-1] == "finished"
    assert {"step", "eval", "checkpoint"} <= set(kinds)


# The demo's event stream before the runner was rewritten around stages: (type, stage, count)
# runs of consecutive events. The rewrite had to keep it.
DEMO_SEQUENCE = [("run_started", "", 1), ("preflight", "", 1), ("metrics", "base", 1),
                 ("step", "", 21), ("eval", "", 1), ("checkpoint", "", 1),
                 ("step", "", 20), ("eval", "", 1), ("checkpoint", "", 1),
                 ("step", "", 20), ("eval", "", 1), ("checkpoint", "", 1),
                 ("metrics", "finetuned", 1), ("finished", "", 1)]


def runs_of(events: list[ev.Event]) -> list[tuple[str, str, int]]:
    """(type, stage, how many in a row): event types in order, with their stage tag."""
    import itertools

    keys = [(e.type, getattr(e, "stage", "")) for e in events]
    return [(t, s, len(list(g))) for (t, s), g in itertools.groupby(keys)]


def test_demo_event_sequence_is_the_recorded_one(demo_run) -> None:
    assert runs_of(ev.read_events(demo_run[0] / "events.jsonl")) == DEMO_SEQUENCE


def test_demo_loss_falls_clearly(demo_run) -> None:
    losses = [s.loss for s in steps(demo_run[0])]
    assert losses[-1] < 0.3 * losses[0], f"loss {losses[0]:.3f} -> {losses[-1]:.3f}"


def test_demo_report_shows_the_finetuned_model_beating_the_base(demo_run) -> None:
    run_dir = demo_run[0]
    for name in ("report.json", "report.md", "loss.png"):
        assert (run_dir / name).is_file(), name
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    rouge_l = report["metrics"]["rougeL"]
    assert rouge_l["finetuned"] > rouge_l["base"] + 0.3, rouge_l
    assert report["metrics"]["eval_loss"]["finetuned"] < report["metrics"]["eval_loss"]["base"]
    assert "| ROUGE-L |" in (run_dir / "report.md").read_text(encoding="utf-8")
    stages = [e.stage for e in ev.read_events(run_dir / "events.jsonl") if e.type == "metrics"]
    assert stages == ["base", "finetuned"]


def test_decoded_answers_hold_no_template_markers(demo_run) -> None:
    report = json.loads((demo_run[0] / "report.json").read_text(encoding="utf-8"))
    for sample in report["samples"]:
        for text in (sample["base"], sample["finetuned"]):
            assert not any(m in text for m in ("<|", "|>", "</s>", "<s>")), text


def test_eval_samples_use_the_same_prompts_every_time(demo_run) -> None:
    evals = [e for e in ev.read_events(demo_run[0] / "events.jsonl") if e.type == "eval"]
    assert len(evals) >= 2
    prompts = [[s.prompt for s in e.samples] for e in evals]
    assert len(prompts[0]) == 3 and all(p == prompts[0] for p in prompts)


def test_slothlab_eval_reproduces_the_run_and_caches(demo_run) -> None:
    import shutil

    from recipes.evaluation import evaluate_run

    run_dir = demo_run[0]
    before = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    shutil.rmtree(run_dir / "eval")
    again = evaluate_run(run_dir, base=True)  # recomputed from scratch
    assert [s["finetuned"] for s in again["samples"]] == [s["finetuned"] for s in before["samples"]]
    assert [s["base"] for s in again["samples"]] == [s["base"] for s in before["samples"]]
    cached = {p.name: p.stat().st_mtime_ns for p in (run_dir / "eval").iterdir()}
    evaluate_run(run_dir, base=True)
    assert {p.name: p.stat().st_mtime_ns for p in (run_dir / "eval").iterdir()} == cached


def test_demo_memory_is_labelled_rss_on_cpu(demo_run) -> None:
    memory = steps(demo_run[0])[-1].memory
    assert memory is not None and memory.kind == "rss" and 0 < memory.now_mb <= memory.total_mb


def test_adapter_loads_onto_the_base_with_peft_and_generates(demo_run) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir = demo_run[0]
    base = AutoModelForCausalLM.from_pretrained(run_dir / "base")
    model = PeftModel.from_pretrained(base, run_dir / "adapter")
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2 plus 3?"}],
                                           tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, do_sample=False)
    answer = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)
    assert answer.strip(), "the adapted model generated nothing"
    lora_weights = [n for n, _ in model.named_parameters() if "lora_" in n]
    assert lora_weights, "no LoRA weights were loaded"


def test_json_stream_is_only_events(tmp_path: Path, tiny_cache: Path) -> None:
    proc = subprocess.run(
        [*SLOTHLAB, "--recipe", "demo", "--json", "--set", "max_steps=4", "--set", "eval_steps=0",
         "--set", "eval_samples=2", "--set", "max_new_tokens=4",
         "--runs-dir", str(tmp_path / "runs")],
        capture_output=True, text=True, env=env_with_cache(tiny_cache), timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    parsed = [ev.parse_event(line) for line in proc.stdout.splitlines()]
    assert parsed[0].type == "run_started" and parsed[-1].type == "finished"


def train(recipe_overrides: list[str], runs: Path, cache: Path, **options) -> Path:
    recipe = load_recipe(bundled()["demo"], overrides=["logging_steps=1", "eval_steps=0",
                                                       "eval_samples=2", "max_new_tokens=4",
                                                       *recipe_overrides])
    return run(recipe, RunOptions(runs_root=runs, cache_dir=cache, **options))


def test_same_recipe_and_seed_give_the_same_losses(runs_dir: Path, tiny_cache: Path) -> None:
    a = train(["max_steps=6"], runs_dir, tiny_cache)
    b = train(["max_steps=6"], runs_dir, tiny_cache)
    assert [s.loss for s in steps(a)] == [s.loss for s in steps(b)]


def test_resume_continues_like_an_uninterrupted_run(runs_dir: Path, tiny_cache: Path) -> None:
    overrides = ["max_steps=12", "save_steps=100"]
    straight = train(overrides, runs_dir, tiny_cache)
    stopped = train(overrides, runs_dir, tiny_cache, stop_at_step=6)
    events = ev.read_events(stopped / "events.jsonl")
    assert events[-1].type == "stopped" and events[-1].step == 6
    assert [c.name for c in checkpoints(stopped)] == ["checkpoint-6"], "stop saves a checkpoint"
    recipe = load_recipe(stopped / "recipe.yaml")
    run(recipe, RunOptions(runs_root=runs_dir, cache_dir=tiny_cache, resume_dir=stopped))
    resumed = {s.step: s.loss for s in steps(stopped)}
    expected = {s.step: s.loss for s in steps(straight)}
    assert sorted(resumed) == list(range(1, 13))
    # Same weights, optimizer state, RNG and batches: the same losses, not merely close ones
    # (adapters trained in bf16 by TRL but resumed in fp32 by peft once drifted 0.3 %).
    assert [resumed[s] for s in range(7, 13)] == [expected[s] for s in range(7, 13)]
    assert ev.read_events(stopped / "events.jsonl")[-1].type == "finished"


def test_the_first_and_last_steps_are_logged_off_the_grid(runs_dir, tiny_cache) -> None:
    run_dir = train(["max_steps=7", "logging_steps=5"], runs_dir, tiny_cache)
    logged = steps(run_dir)
    assert [s.step for s in logged] == [1, 5, 7]
    finished = ev.read_events(run_dir / "events.jsonl")[-1]
    assert finished.type == "finished" and finished.final_loss == logged[-1].loss


def test_adapters_train_in_fp32(runs_dir: Path, tiny_cache: Path) -> None:
    from safetensors import safe_open

    run_dir = train(["max_steps=2"], runs_dir, tiny_cache)
    with safe_open(str(run_dir / "adapter" / "adapter_model.safetensors"), "pt") as f:
        dtypes = {str(f.get_slice(k).get_dtype()) for k in f.keys()}
    assert dtypes == {"F32"}, "TRL casts QLoRA adapters to bf16; the run must undo that"


def test_sigint_stops_with_a_checkpoint_and_exit_130(tmp_path: Path, tiny_cache: Path) -> None:
    runs = tmp_path / "runs"
    proc = subprocess.Popen(
        [*SLOTHLAB, "--recipe", "demo", "--json", "--set", "max_steps=2000",
         "--set", "save_steps=1000", "--runs-dir", str(runs)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env_with_cache(tiny_cache))
    try:
        for line in proc.stdout:
            if json.loads(line)["type"] == "step":
                proc.send_signal(signal.SIGINT)
                break
        rest = proc.stdout.read()
        code = proc.wait(timeout=120)
    finally:
        proc.kill()
    last = ev.parse_event(rest.strip().splitlines()[-1])
    assert code == 130, proc.stderr.read()[-2000:]
    assert last.type == "stopped" and last.checkpoint, last
    assert Path(last.checkpoint).is_dir()
    assert last.resume_command.startswith("slothlab --resume ")


def test_real_mode_with_a_local_model_folder(runs_dir: Path, tiny_cache: Path) -> None:
    """Not tiny: the model comes from `--set model=/local/folder`, as on a machine with no hub."""
    from recipes.data.prepare import load_examples
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    demo = load_recipe(bundled()["demo"])
    examples = load_examples(demo, str(Path(__file__).parents[1] / demo.dataset)).examples
    folder = build_tiny_model(demo, tokenizer_corpus(demo, examples), tiny_cache)
    run_dir = train(["tiny=false", f"model={folder}", "max_steps=3"], runs_dir, tiny_cache)
    events = ev.read_events(run_dir / "events.jsonl")
    assert events[0].tiny is False and events[-1].type == "finished"
    assert not (run_dir / "base").exists(), "only tiny mode copies a base model into the run"
    adapter = json.loads((run_dir / "adapter" / "adapter_config.json").read_text(encoding="utf-8"))
    assert adapter["base_model_name_or_path"] == str(folder)
