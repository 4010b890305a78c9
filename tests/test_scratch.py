"""gemma3-scratch: the corpus sample, the tokenizer, target-only masking, and the three stages
end to end on a CPU (stopped in pretraining, resumed with `slothlab --resume`, a stage alone)."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest

from recipes import events as ev
from recipes.corpus import check_same_corpus, load_corpus, sample_counts
from recipes.data.render import Renderer, tokenize
from recipes.data.types import IGNORE_INDEX
from recipes.errors import RecipeError, RunDirError
from recipes.registry import bundled
from recipes.runner import RunOptions, run
from recipes.schema import load_recipe
from recipes.stages.pretrain import pack
from recipes.stages.scratch_data import (
    SPAN_SEPARATOR,
    clarification_examples,
    infilling_examples,
    mask_spans,
)
from recipes.stages.tokenizer import MASK, train_tokenizer

# Fewer steps than the recipe's tiny mode: the tests check the pipeline, not the model.
FAST = ["pretrain_max_steps=20", "max_steps=20", "eval_steps=10", "save_steps=100",
        "logging_steps=5", "eval_samples=8", "max_new_tokens=8"]


@pytest.fixture(scope="module", autouse=True)
def one_cpu_thread():
    """Tiny models are overhead-bound: one intra-op thread keeps a shared 2-core machine from
    being oversubscribed (2-5x faster here under load)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def scratch(*overrides: str):
    return load_recipe(bundled()["gemma3-scratch"], overrides=["tiny=true", *overrides])


def events_of(run_dir: Path) -> list[ev.Event]:
    return ev.read_events(run_dir / "events.jsonl")


@pytest.fixture(scope="module")
def corpus():
    return load_corpus(scratch())


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("tokenizer")


@pytest.fixture(scope="module")
def tokenizer(corpus, tokenizer_dir: Path):
    return train_tokenizer([t for _, t in corpus.train], 400, tokenizer_dir, character_coverage=1.0)


# ------------------------------------------------------------------------ recipe and corpus

def test_recipe_is_the_write_up() -> None:
    r = load_recipe(bundled()["gemma3-scratch"])
    assert r.stages == ["tokenizer", "pretrain", "finetune"]
    assert r.language_ratios == ["as=0.5", "hi=0.3", "en=0.2"]
    assert (r.corpus_sentences, r.model, r.load_in_4bit) == (100_000, "google/gemma-3-270m", False)
    assert load_recipe(bundled()["demo"]).stages == [], "other recipes stay single-stage"


def test_the_sample_is_sampled_in_the_language_ratios(corpus) -> None:
    # 48 sentences per language: Assamese at 0.5 caps the sample at 96 = 48 + 29 + 19.
    assert corpus.sampled == {"as": 48, "hi": 29, "en": 19}
    everything = corpus.train + corpus.val + corpus.test
    counts = {lang: sum(1 for x in everything if x[0] == lang) for lang in corpus.sampled}
    assert counts == corpus.sampled
    assert len(set(everything)) == len(everything), "a sentence in two splits"
    assert {lang for lang, _ in corpus.test} == {"as", "hi", "en"}, "held out per language"
    smaller = load_corpus(scratch("corpus_sentences=50"))
    assert smaller.sampled == {"as": 25, "hi": 15, "en": 10}
    assert load_corpus(scratch("corpus_sentences=50")).train == smaller.train, "seeded"


def test_asking_for_more_sentences_than_the_ratios_allow_says_so() -> None:
    counts, notes = sample_counts({"as": 48, "hi": 48, "en": 48},
                                  {"as": 0.5, "hi": 0.3, "en": 0.2}, 1000)
    assert counts == {"as": 48, "hi": 29, "en": 19}
    assert notes and "'as' has only 48" in notes[0]


@pytest.mark.parametrize("override, message", [
    ("stages=[pretrain, tokenizer]", "not consecutive"),
    ("stages=[tokenizer, finetune]", "not consecutive"),
    ("stages=[tokenise]", "unknown stage"),
    ("language_ratios=[as=0.5, hi]", "not lang=weight"),
    ("stages=[finetune]", "needs a pretrained model folder"),
    ("stages=[pretrain]", "needs a tokenizer"),
])
def test_bad_stage_settings_fail_before_a_run_starts(override: str, message: str,
                                                     runs_dir: Path) -> None:
    with pytest.raises(RecipeError, match=message):
        run(scratch(override), RunOptions(runs_root=runs_dir))
    assert not list(runs_dir.iterdir()), "no run directory for a recipe that cannot run"


def test_a_resumed_run_must_read_the_same_corpus_sample(corpus, tmp_path: Path) -> None:
    done = tmp_path / "stages" / "tokenizer" / "done.json"
    done.parent.mkdir(parents=True)
    done.write_text(json.dumps({"corpus": corpus.fingerprint()}), encoding="utf-8")
    check_same_corpus(tmp_path, scratch(), corpus)
    other = load_corpus(scratch("seed=1"))
    with pytest.raises(RunDirError, match="corpus sample differs"):
        check_same_corpus(tmp_path, scratch(), other)


# ------------------------------------------------------------------------------ tokenizer

def test_tokenizer_has_the_vocab_size_and_encodes_like_sentencepiece(tokenizer, tokenizer_dir,
                                                                     corpus) -> None:
    import sentencepiece as spm

    assert len(tokenizer) == 400
    assert [tokenizer.convert_tokens_to_ids(t) for t in
            ("<pad>", "<eos>", "<bos>", "<unk>", MASK)] == [0, 1, 2, 3, 4]
    assert tokenizer.eos_token == "<end_of_turn>" and tokenizer.chat_template
    sp = spm.SentencePieceProcessor(model_file=str(tokenizer_dir / "tokenizer.model"))
    held_out = [t for _, t in corpus.held_out()]
    assert tokenizer(held_out, add_special_tokens=False)["input_ids"] == [sp.encode(t) for t in held_out]
    enc = tokenizer("মই ভাত খাওঁ।", return_offsets_mapping=True)
    assert enc["input_ids"][0] == tokenizer.bos_token_id, "BOS first, as Gemma's tokenizer"
    assert enc["offset_mapping"][-1][1] == len("মই ভাত খাওঁ।")


# ---------------------------------------------------------------------------------- masking

def test_mask_spans_hides_words_in_separated_spans() -> None:
    sentence = "one two three four five six seven eight nine ten eleven twelve"
    for seed in range(20):
        masked, target = mask_spans(sentence, 0.3, random.Random(seed))
        spans = target.split(SPAN_SEPARATOR)
        assert masked.count(MASK) == len(spans)
        assert sum(len(s.split()) for s in spans) == round(0.3 * 12)
        assert f"{MASK} {MASK}" not in masked, "spans are separated by a kept word"
        rebuilt = masked
        for span in spans:
            rebuilt = rebuilt.replace(MASK, span, 1)
        assert rebuilt == sentence
    assert mask_spans("alone", 0.5, random.Random(0)) is None


def trained_text(tokenizer, tok) -> str:
    return tokenizer.decode([i for i, lab in zip(tok.input_ids, tok.labels, strict=True)
                             if lab != IGNORE_INDEX])


def test_only_the_targets_are_trained(tokenizer, corpus) -> None:
    recipe = scratch()
    infill = infilling_examples(corpus.train[:8], recipe.infill_mask_ratio, recipe.seed)
    clarify = clarification_examples(recipe)[:8]
    assert {e.meta["task"] for e in infill + clarify} == {"infilling", "clarification"}
    items = tokenize(infill + clarify, Renderer(tokenizer, recipe), recipe.max_seq_length)
    for ex, tok in zip(infill + clarify, items, strict=True):
        target = ex.messages[-1]["content"]
        assert trained_text(tokenizer, tok) == target + "<end_of_turn>"
        prompt = ex.messages[0]["content"]
        assert tok.labels[:len(tokenizer(prompt)["input_ids"])].tolist() == \
            [IGNORE_INDEX] * len(tokenizer(prompt)["input_ids"]), "the prompt is not trained"
    masked = infill[0].messages[0]["content"]
    assert MASK in masked and tokenizer.convert_tokens_to_ids(MASK) in items[0].input_ids


def test_pretraining_packs_sentences_into_blocks() -> None:
    seqs = [[2, 5, 6, 1], [2, 7, 1], [2, 8, 9, 10, 11, 1]]
    assert pack(seqs, 4) == [[2, 5, 6, 1], [2, 7, 1, 2], [8, 9, 10, 11]], \
        "a last block of one token has nothing to predict and is dropped"
    assert pack(seqs, 5) == [[2, 5, 6, 1, 2], [7, 1, 2, 8, 9], [10, 11, 1]]


# ------------------------------------------------------------------------------ end to end

def cli_env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """All three stages: stopped in pretraining at step 10, then `slothlab --resume`."""
    runs = tmp_path_factory.mktemp("scratch-runs")
    run_dir = run(scratch(*FAST), RunOptions(runs_root=runs, stop_at_step=10))
    proc = subprocess.run([sys.executable, "-m", "tui.cli", "--resume", str(run_dir), "--json"],
                          capture_output=True, text=True, env=cli_env(), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return run_dir, proc


@pytest.mark.slow
def test_stop_in_pretraining_then_resume_finishes_every_stage(pipeline) -> None:
    run_dir, proc = pipeline
    stream = [ev.parse_event(line) for line in proc.stdout.splitlines()]
    assert stream[0].type == "run_started" and stream[0].resumed_from_step == 10
    assert stream[-1].type == "finished", "the resumed run finishes"
    events = events_of(run_dir)
    stopped = [e for e in events if e.type == "stopped"]
    assert len(stopped) == 1 and stopped[0].step == 10
    assert stopped[0].checkpoint.endswith("stages/pretrain/checkpoints/checkpoint-10")
    tokenizer_metrics = [e for e in events if e.type == "metrics" and e.stage == "tokenizer"]
    assert len(tokenizer_metrics) == 1, "the finished tokenizer stage is not run again"
    assert [e.stage for e in events if e.type == "preflight"] == ["pretrain", "pretrain",
                                                                 "finetune"]
    pre_steps = sorted({e.step for e in events if e.type == "step" and e.stage == "pretrain"})
    # step 1 is logged at once (logging_first_step), then every 5; the resume adds 15 and 20.
    assert pre_steps == [1, 5, 10, 15, 20], "pretraining continued from step 10 to 20"
    assert {e.stage for e in events if e.type == "step"} == {"pretrain", "finetune"}
    assert all(e.stage for e in events if e.type in ("step", "eval", "checkpoint", "preflight"))
    stages = [e.stage for e in events if e.type == "metrics"]
    assert stages == ["tokenizer", "pretrain", "base", "finetuned"]


# The staged run's event stream (stopped in pretraining, then resumed) before the runner was
# rewritten around stages: (type, stage, count) runs of consecutive events.
STAGED_SEQUENCE = [
    ("run_started", "", 1), ("metrics", "tokenizer", 1), ("preflight", "pretrain", 1),
    ("eval", "pretrain", 1), ("step", "pretrain", 3), ("checkpoint", "pretrain", 1),
    ("stopped", "", 1), ("run_started", "", 1), ("preflight", "pretrain", 1),
    ("step", "pretrain", 2), ("eval", "pretrain", 1), ("checkpoint", "pretrain", 1),
    ("metrics", "pretrain", 1), ("preflight", "finetune", 1), ("metrics", "base", 1),
    ("eval", "finetune", 1), ("step", "finetune", 3), ("eval", "finetune", 1),
    ("step", "finetune", 2), ("eval", "finetune", 1), ("checkpoint", "finetune", 1),
    ("metrics", "finetuned", 1), ("finished", "", 1)]


@pytest.mark.slow
def test_staged_event_sequence_is_the_recorded_one(pipeline) -> None:
    import itertools

    keys = [(e.type, getattr(e, "stage", "")) for e in events_of(pipeline[0])]
    assert [(t, s, len(list(g))) for (t, s), g in itertools.groupby(keys)] == STAGED_SEQUENCE


@pytest.mark.slow
def test_each_stage_leaves_its_output_and_a_done_marker(pipeline) -> None:
    run_dir, _ = pipeline
    stages = run_dir / "stages"
    for stage in ("tokenizer", "pretrain", "finetune"):
        assert (stages / stage / "done.json").is_file(), stage
    for name in ("tokenizer.model", "tokenizer.json", "chat_template.jinja"):
        assert (stages / "tokenizer" / name).is_file(), name
    assert (stages / "pretrain" / "model" / "model.safetensors").is_file()
    assert (stages / "finetune" / "adapter" / "adapter_model.safetensors").is_file()
    assert (run_dir / "adapter" / "adapter_config.json").is_file(), "the adapter front ends find"


@pytest.mark.slow
def test_the_adapter_loads_on_the_pretrained_gemma3_and_generates(pipeline) -> None:
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    run_dir, _ = pipeline
    config = json.loads((run_dir / "adapter" / "adapter_config.json").read_text())
    base = AutoModelForCausalLM.from_pretrained(config["base_model_name_or_path"])
    assert type(base).__name__ == "Gemma3ForCausalLM"
    tokenizer = AutoTokenizer.from_pretrained(run_dir / "adapter")
    assert base.config.vocab_size == len(tokenizer) == 512
    model = PeftModel.from_pretrained(base, run_dir / "adapter")
    prompt = tokenizer.apply_chat_template([{"role": "user", "content": "Clarify the question:\nTea price?"}],
                                           tokenize=False, add_generation_prompt=True)
    inputs = tokenizer(prompt, return_tensors="pt", add_special_tokens=False)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=6, do_sample=False)
    assert out.shape[1] > inputs["input_ids"].shape[1]


@pytest.mark.slow
def test_the_report_has_a_section_per_stage(pipeline) -> None:
    run_dir, _ = pipeline
    for name in ("report.md", "report.json", "loss.png", "loss_pretrain.png", "loss_finetune.png"):
        assert (run_dir / name).is_file(), name
    md = (run_dir / "report.md").read_text(encoding="utf-8")
    for heading in ("## 1. Tokenizer", "## 2. Pretraining", "## 3. Fine-tuning (LoRA)"):
        assert heading in md
    for row in ("| Assamese |", "| Hindi |", "| English |", "| infilling | Exact match |",
                "| clarification | ROUGE-L |"):
        assert row in md, row
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    tok, pre, fine = (report["stages"][s] for s in ("tokenizer", "pretrain", "finetune"))
    assert tok["vocab_size"] == 512 and tok["sampled"] == {"as": 48, "hi": 29, "en": 19}
    assert set(tok["fertility"]) == {"as", "hi", "en", "all"}
    assert pre["train_loss_last"] < pre["train_loss_first"] - 2.0, pre
    assert pre["curve"]["eval"][0][0] == 0, "the eval curve starts at the random model"
    assert set(pre["eval_loss_by_language"]) == {"as", "hi", "en"}
    for task in ("infilling", "clarification"):
        loss = fine["tasks"][task]["metrics"]["eval_loss"]
        assert loss["finetuned"] < loss["base"], (task, loss)
    assert "rougeL" in report["metrics"] and report["samples"], "the table front ends read"


@pytest.mark.slow
def test_resuming_a_finished_run_is_refused(pipeline) -> None:
    run_dir, _ = pipeline
    before = (run_dir / "events.jsonl").read_bytes()
    with pytest.raises(RunDirError, match="already finished every stage"):
        run(load_recipe(run_dir / "recipe.yaml"), RunOptions(resume_dir=run_dir))
    assert (run_dir / "events.jsonl").read_bytes() == before, "the run is left alone"


@pytest.mark.slow
def test_finetune_alone_on_a_pretrained_model(pipeline, runs_dir: Path) -> None:
    model = pipeline[0] / "stages" / "pretrain" / "model"
    run_dir = run(scratch("stages=[finetune]", f"model={model}", "max_steps=6", "eval_steps=0",
                          "eval_samples=4", "max_new_tokens=4"), RunOptions(runs_root=runs_dir))
    assert sorted(p.name for p in (run_dir / "stages").iterdir()) == ["finetune"]
    events = events_of(run_dir)
    assert [e.stage for e in events if e.type == "preflight"] == ["finetune"]
    assert events[-1].type == "finished" and events[-1].adapter_dir == str(run_dir / "adapter")
    report = json.loads((run_dir / "report.json").read_text(encoding="utf-8"))
    assert list(report["stages"]) == ["finetune"]
    assert report["stages"]["finetune"]["base_model"] == str(model.resolve())


@pytest.mark.slow
def test_tokenizer_then_pretrain_alone(runs_dir: Path) -> None:
    tok_run = run(scratch("stages=[tokenizer]", "tokenizer_vocab_size=420"),
                  RunOptions(runs_root=runs_dir))
    events = events_of(tok_run)
    assert [e.type for e in events] == ["run_started", "metrics", "finished"]
    assert events[-1].adapter_dir == str(tok_run / "stages" / "tokenizer")
    pre_run = run(scratch("stages=[pretrain]", f"tokenizer_path={tok_run / 'stages' / 'tokenizer'}",
                          "pretrain_max_steps=3", "eval_steps=0", "max_new_tokens=4"),
                  RunOptions(runs_root=runs_dir))
    config = json.loads((pre_run / "stages" / "pretrain" / "model" / "config.json").read_text())
    assert config["vocab_size"] == 420 and config["model_type"] == "gemma3_text"
    assert events_of(pre_run)[-1].type == "finished"


@pytest.mark.slow
def test_ctrl_c_between_stages_stops_and_resume_runs_the_next_stage(runs_dir: Path) -> None:
    import signal

    def interrupt_after_the_tokenizer(event: ev.Event) -> None:
        if event.type == "metrics" and event.stage == "tokenizer":
            os.kill(os.getpid(), signal.SIGINT)  # the first Ctrl-C asks for a clean stop

    recipe = scratch("stages=[tokenizer, pretrain]", "pretrain_max_steps=3", "eval_steps=0",
                     "max_new_tokens=4")
    run_dir = run(recipe, RunOptions(runs_root=runs_dir, listeners=[interrupt_after_the_tokenizer]))
    last = events_of(run_dir)[-1]
    assert last.type == "stopped" and last.checkpoint is None
    assert not (run_dir / "stages" / "pretrain").exists()
    run(load_recipe(run_dir / "recipe.yaml"), RunOptions(resume_dir=run_dir))
    events = events_of(run_dir)
    assert events[-1].type == "finished"
    assert [e.stage for e in events if e.type == "metrics"] == ["tokenizer", "pretrain"]
