"""gemma3-scratch: a tokenizer, a Gemma 3 model pretrained from scratch, then LoRA fine-tuning.

    slothlab --recipe gemma3-scratch --tiny          # all three stages on a CPU, well under a minute
    slothlab --resume runs/<id>                      # skips finished stages, continues the current one
    slothlab --recipe gemma3-scratch --tiny --set stages=[tokenizer]
    slothlab --recipe gemma3-scratch --tiny --set stages=[pretrain] \\
        --set tokenizer_path=runs/<id>/stages/tokenizer
    slothlab --recipe gemma3-scratch --tiny --set stages=[finetune] \\
        --set model=runs/<id>/stages/pretrain/model

Seed 004's write-up as one recipe, in three stages that ``recipes.train.run`` hands over to
``run_stages`` (any recipe with ``stages`` set):

1. tokenizer: sample the corpus (rows of ``text`` + ``lang``) in ``language_ratios``, hold out
   validation and test sentences per language, train a SentencePiece BPE model on the rest
   (byte fallback, digits split, Gemma's special tokens and ``<mask>``), wrap it as a
   transformers ``GemmaTokenizer`` (fast, so offsets work) with the Gemma chat template, and
   measure its fertility per language on the held-out sentences.
2. pretrain: ``Gemma3ForCausalLM`` initialised from a config sized by the recipe, trained on
   the training sentences (``<bos> text <eos>``, packed into ``max_seq_length`` blocks) with
   the causal-LM loss over every token, all parameters, TRL's SFTTrainer; eval loss per
   language on the held-out sentences.
3. finetune: LoRA on the pretrained model for two tasks in one adapter: infilling (random
   word spans of corpus sentences replaced by ``<mask>``; target = the spans, ``|`` between
   them) and question clarification (ambiguous question -> clarified question). Chat
   template, loss on the target only (recipes.data's masking). Greedy evaluation per task,
   before (adapter off) and after.

Every stage writes into ``runs/<id>/stages/<stage>/`` and ends with ``done.json``; a resumed
run skips stages that have one and continues the current stage from its latest checkpoint.
The whole pipeline writes one ``events.jsonl`` whose preflight/step/eval/checkpoint events
carry ``stage``, and one report (report.md/.json, loss_pretrain.png, loss_finetune.png).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import random
import re
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.data import held_out_sizes
from recipes.errors import BackendError, DataError, RecipeError, RunDirError, SlothlabError
from recipes.rundir import ADAPTER, EVENTS_FILE, RECIPE_FILE, STAGES_DIR, latest_checkpoint
from recipes.schema import Recipe

STAGES = ("tokenizer", "pretrain", "finetune")
DONE = "done.json"
MODEL = "model"  # the pretrained Gemma 3 folder inside stages/pretrain/
TASKS = ("infilling", "clarification")
# Gemma's special tokens, in Gemma's id order (pad 0, eos 1, bos 2, unk 3, mask 4), then the
# chat-turn markers. Generation for chat stops at <end_of_turn>; pretraining text ends in <eos>.
PAD, EOS, BOS, UNK, MASK = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
SLIDING_WINDOW = 512  # Gemma 3 270m / 1b local-attention window
FULL_ATTENTION_EVERY = 6  # Gemma 3: five local layers, then one global
INFILL_PROMPT = "Fill in each {mask}:\n{text}"
CLARIFY_PROMPT = "Clarify the question:\n{text}"
SPAN_SEPARATOR = " | "
# What each task is scored by in the report (greedy answers against references).
TASK_METRICS = {"infilling": ("exact_match", "token_f1", "chrf"),
                "clarification": ("rougeL", "chrf", "bleu")}
BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")
BACKEND_REASON = ("multi-stage from-scratch pipeline: transformers + peft (reference backend) "
                  "for full-parameter pretraining and LoRA")


# ----------------------------------------------------------------------------- the recipe

def check_stages(recipe: Recipe) -> None:
    """Stages are known, in pipeline order, without gaps; ratios parse. Nothing has started."""
    unknown = [s for s in recipe.stages if s not in STAGES]
    if unknown:
        raise RecipeError(f"unknown stage(s) {', '.join(unknown)}", where="stages",
                          fix=f"choose from {', '.join(STAGES)}, in that order")
    positions = [STAGES.index(s) for s in recipe.stages]
    if positions != list(range(positions[0], positions[0] + len(positions))):
        raise RecipeError(
            f"stages {recipe.stages} are not consecutive stages in pipeline order",
            where="stages",
            fix="run tokenizer, pretrain, finetune in order (or a run of them, e.g. "
                "[pretrain, finetune]); a later stage alone reads an earlier run's output via "
                "tokenizer_path or model")
    parse_ratios(recipe)


def parse_ratios(recipe: Recipe) -> dict[str, float]:
    """``[as=0.5, hi=0.3, en=0.2]`` -> {"as": 0.5, "hi": 0.3, "en": 0.2}, normalised to sum 1."""
    ratios: dict[str, float] = {}
    for item in recipe.language_ratios:
        lang, sep, weight = item.partition("=")
        try:
            value = float(weight) if sep else -1.0
        except ValueError:
            value = -1.0
        if not lang.strip() or value <= 0 or lang.strip() in ratios:
            raise RecipeError(f"language_ratios entry {item!r} is not lang=weight (weight > 0, "
                              "each language once)", where="language_ratios",
                              fix="write e.g. [as=0.5, hi=0.3, en=0.2]")
        ratios[lang.strip()] = value
    total = sum(ratios.values())
    return {lang: w / total for lang, w in ratios.items()}


def stage_dir(run_dir: Path, stage: str) -> Path:
    return run_dir / STAGES_DIR / stage


def is_done(run_dir: Path, stage: str) -> bool:
    return (stage_dir(run_dir, stage) / DONE).is_file()


def read_done(run_dir: Path, stage: str) -> dict[str, Any] | None:
    path = stage_dir(run_dir, stage) / DONE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None


def _write_json(path: Path, data: Any) -> None:
    """Write via a temporary file, so a marker is either complete or absent."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(data, ensure_ascii=False, indent=1), encoding="utf-8")
    partial.replace(path)


# ----------------------------------------------------------------------------- the corpus

@dataclass
class Corpus:
    """The sampled sentences as (lang, text), split per language; the same for every stage."""

    train: list[tuple[str, str]]
    val: list[tuple[str, str]]
    test: list[tuple[str, str]]
    sampled: dict[str, int]  # sentences sampled per language
    available: dict[str, int]  # usable sentences per language in the source
    notes: list[str] = field(default_factory=list)

    def held_out(self) -> list[tuple[str, str]]:
        return self.val + self.test

    def fingerprint(self) -> str:
        """Changes when the sample or its split does (another corpus, seed or ratio)."""
        import hashlib

        payload = json.dumps([self.train, self.val, self.test], ensure_ascii=False)
        return hashlib.sha256(payload.encode()).hexdigest()[:16]


def corpus_source(recipe: Recipe) -> str:
    from recipes.train import data_source

    return data_source(recipe)


def load_corpus(recipe: Recipe) -> Corpus:
    """Read the corpus, sample it in the language ratios (seeded) and split it per language."""
    from recipes.data import load_rows
    from recipes.train import PROJECT_ROOT

    source = corpus_source(recipe)
    rows = load_rows(source, recipe, base_dirs=[PROJECT_ROOT])
    if recipe.max_examples:
        rows = rows[:recipe.max_examples]
    text_col, lang_col = recipe.columns.get("text", "text"), recipe.columns.get("lang", "lang")
    missing = [c for c in (text_col, lang_col) if c not in rows[0]]
    if missing:
        raise DataError(
            f"the corpus needs column(s) {', '.join(repr(c) for c in missing)}; it has "
            f"{', '.join(repr(c) for c in rows[0])}", where=source,
            fix="one sentence per row with its language code; map other names with e.g. "
                "--set columns={text: sentence, lang: language}")
    by_lang: dict[str, list[str]] = {}
    seen: set[tuple[str, str]] = set()
    for row in rows:
        text = " ".join(str(row.get(text_col) or "").split())  # a sentence is one line
        lang = str(row.get(lang_col) or "").strip()
        if text and lang and (lang, text) not in seen:
            seen.add((lang, text))
            by_lang.setdefault(lang, []).append(text)
    ratios = parse_ratios(recipe) or {lang: len(t) / len(seen) for lang, t in by_lang.items()}
    absent = [lang for lang in ratios if not by_lang.get(lang)]
    if absent:
        raise DataError(f"the corpus has no sentence in language(s) {', '.join(absent)}; it has "
                        f"{', '.join(f'{k} ({len(v)})' for k, v in sorted(by_lang.items()))}",
                        where=source, fix="fix language_ratios or the corpus's lang column")
    counts, notes = sample_counts({lang: len(by_lang[lang]) for lang in ratios}, ratios,
                                  recipe.corpus_sentences)
    dropped = sorted(set(by_lang) - set(ratios))
    if dropped:
        notes.append(f"languages not in language_ratios left out: {', '.join(dropped)}")
    rng = random.Random(recipe.seed)
    train: list[tuple[str, str]] = []
    val: list[tuple[str, str]] = []
    test: list[tuple[str, str]] = []
    for lang in ratios:  # split per language, so every language is held out in proportion
        picked = rng.sample(by_lang[lang], counts[lang])
        n_test, n_val = held_out_sizes(len(picked), recipe)
        test += [(lang, t) for t in picked[:n_test]]
        val += [(lang, t) for t in picked[n_test:n_test + n_val]]
        train += [(lang, t) for t in picked[n_test + n_val:]]
    rng.shuffle(train)
    return Corpus(train, val, test, counts, {k: len(by_lang[k]) for k in ratios}, notes)


def sample_counts(available: dict[str, int], ratios: dict[str, float],
                  wanted: int) -> tuple[dict[str, int], list[str]]:
    """Sentences per language: ``wanted`` in total, split in ``ratios`` (largest remainder).

    A language with too few sentences caps the total, so the ratios always hold; 0 = the
    largest total the ratios allow.
    """
    largest = min(math.floor(available[lang] / r + 1e-9) for lang, r in ratios.items())
    total = largest if not wanted else min(wanted, largest)
    notes = []
    if wanted and total < wanted:
        short = min(ratios, key=lambda lang: available[lang] / ratios[lang])
        notes.append(f"corpus_sentences={wanted} asked, {total} sampled: '{short}' has only "
                     f"{available[short]} sentences for its {ratios[short]:.0%} share")
    exact = {lang: r * total for lang, r in ratios.items()}
    counts = {lang: min(int(x), available[lang]) for lang, x in exact.items()}
    by_remainder = sorted(ratios, key=lambda lang: exact[lang] - int(exact[lang]), reverse=True)
    for lang in by_remainder[:total - sum(counts.values())]:
        counts[lang] = min(counts[lang] + 1, available[lang])
    return counts, notes


# -------------------------------------------------------------------------- 1. tokenizer

def train_tokenizer(sentences: list[str], vocab_size: int, folder: Path, *,
                    character_coverage: float = 0.9995) -> Any:
    """SentencePiece BPE on ``sentences``, saved in ``folder`` as tokenizer.model and as a
    transformers GemmaTokenizer (tokenizer.json + chat template); returns the latter."""
    import sentencepiece as spm

    folder.mkdir(parents=True, exist_ok=True)
    text_file = folder / "train_sentences.txt"
    text_file.write_text("\n".join(sentences) + "\n", encoding="utf-8")
    try:
        spm.SentencePieceTrainer.train(
            input=str(text_file), model_prefix=str(folder / "tokenizer"), model_type="bpe",
            vocab_size=vocab_size, character_coverage=character_coverage,
            # Gemma's settings: unknown characters fall back to bytes, digits split, spaces
            # kept as they are (no dummy prefix, no whitespace squeezing).
            byte_fallback=True, split_digits=True, add_dummy_prefix=False,
            remove_extra_whitespaces=False, allow_whitespace_only_pieces=True,
            normalization_rule_name="identity",
            pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece=PAD, eos_piece=EOS,
            bos_piece=BOS, unk_piece=UNK,
            user_defined_symbols=[MASK, START_OF_TURN, END_OF_TURN],
            input_sentence_size=0, shuffle_input_sentence=False,  # already sampled
            num_threads=max(1, min(os.cpu_count() or 1, 16)), minloglevel=2)
    except RuntimeError as exc:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
        if needed:  # every character and the 256 byte tokens need an id of their own
            raise RecipeError(
                f"a {vocab_size}-token vocabulary cannot hold the corpus's characters, the "
                f"byte-fallback tokens and the special tokens ({needed[1]} ids)",
                where="tokenizer_vocab_size", fix=f"set tokenizer_vocab_size > {needed[1]}",
            ) from None
        raise RecipeError(
            f"SentencePiece could not train a {vocab_size}-token vocabulary on "
            f"{len(sentences)} sentences ({str(exc).strip().splitlines()[-1][-200:]})",
            where="tokenizer_vocab_size",
            fix="lower tokenizer_vocab_size, or sample more sentences (corpus_sentences)",
        ) from None
    tokenizer = wrap_sentencepiece(folder / "tokenizer.model")
    tokenizer.save_pretrained(str(folder))
    return tokenizer


def wrap_sentencepiece(model_file: Path) -> Any:
    """The SentencePiece model as a fast transformers tokenizer with Gemma's conventions:
    BOS added to every text, <end_of_turn> as EOS for chat, the Gemma chat template."""
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_sentencepiece import SentencePieceExtractor

    from recipes.models import CHAT_TEMPLATES

    vocab, _, merges = SentencePieceExtractor(str(model_file)).extract()
    tokenizer = GemmaTokenizer(vocab=vocab, merges=merges, add_bos_token=True, bos_token=BOS,
                               eos_token=END_OF_TURN, pad_token=PAD, unk_token=UNK,
                               mask_token=MASK, extra_special_tokens=[START_OF_TURN, EOS])
    tokenizer.chat_template = CHAT_TEMPLATES["gemma"]
    return tokenizer


def fertility(tokenizer: Any, sentences: list[tuple[str, str]]) -> dict[str, dict[str, float]]:
    """Per language (and "all"): tokens per sentence and per word, characters per token and
    the share of byte-fallback tokens, over ``sentences``."""
    groups: dict[str, list[str]] = {}
    for lang, text in sentences:
        groups.setdefault(lang, []).append(text)
    groups["all"] = [text for _, text in sentences]
    vocab = tokenizer.convert_ids_to_tokens(list(range(len(tokenizer))))
    byte_ids = {i for i, piece in enumerate(vocab) if piece and BYTE_PIECE.match(piece)}
    out = {}
    for lang, texts in groups.items():
        if not texts:
            continue
        ids = tokenizer(texts, add_special_tokens=False)["input_ids"]
        tokens = sum(len(x) for x in ids)
        words = sum(len(t.split()) for t in texts)
        chars = sum(len(t) for t in texts)
        out[lang] = {"sentences": len(texts), "words": words, "characters": chars,
                     "tokens": tokens, "tokens_per_sentence": tokens / len(texts),
                     "tokens_per_word": tokens / max(words, 1),
                     "chars_per_token": chars / max(tokens, 1),
                     "byte_fallback_share": sum(i in byte_ids for x in ids for i in x)
                     / max(tokens, 1)}
    return out


def load_stage_tokenizer(folder: Path) -> Any:
    from transformers import AutoTokenizer

    if not (folder / "tokenizer.json").is_file():
        raise RunDirError("no trained tokenizer here (tokenizer.json missing)", where=str(folder),
                          fix="point tokenizer_path at a tokenizer stage's folder "
                              "(runs/<id>/stages/tokenizer), or add the tokenizer stage")
    return AutoTokenizer.from_pretrained(str(folder))


# --------------------------------------------------------------------------- 2. pretrain

def model_sizes(recipe: Recipe) -> dict[str, int]:
    """The from-scratch model's sizes: the `model`'s own (tiny: the miniature's), then the
    recipe's scratch_* fields over them."""
    from recipes.models import model_info
    from recipes.tiny import TINY

    if recipe.tiny:
        base = {"hidden_size": TINY["hidden_size"], "intermediate_size": TINY["intermediate_size"],
                "num_layers": TINY["num_layers"], "num_heads": TINY["num_heads"],
                "num_kv_heads": TINY["num_kv_heads"],
                "head_dim": TINY["hidden_size"] // TINY["num_heads"]}
    else:
        info = model_info(recipe.model)
        explicit = (recipe.scratch_hidden_size, recipe.scratch_layers, recipe.scratch_heads,
                    recipe.scratch_kv_heads)
        if info is None and not all(explicit):
            raise RecipeError(
                f"the size of a from-scratch model like '{recipe.model}' is unknown",
                where="model",
                fix="set model: google/gemma-3-270m (its sizes), or every one of "
                    "scratch_hidden_size, scratch_layers, scratch_heads, scratch_kv_heads")
        if info is not None and info.model_type != "gemma3_text":
            raise RecipeError(f"'{recipe.model}' is a {info.model_type} model; the pretrain "
                              "stage builds Gemma 3", where="model",
                              fix="set model: google/gemma-3-270m")
        base = ({"hidden_size": info.hidden_size, "intermediate_size": info.intermediate_size,
                 "num_layers": info.num_layers, "num_heads": info.num_heads,
                 "num_kv_heads": info.num_kv_heads, "head_dim": info.head_size}
                if info else {})
    hidden = recipe.scratch_hidden_size or base["hidden_size"]
    heads = recipe.scratch_heads or base["num_heads"]
    resized = bool(recipe.scratch_hidden_size or recipe.scratch_heads)
    sizes = {
        "hidden_size": hidden,
        "num_layers": recipe.scratch_layers or base["num_layers"],
        "num_heads": heads,
        "num_kv_heads": recipe.scratch_kv_heads or base["num_kv_heads"],
        "head_dim": recipe.scratch_head_dim or (hidden // heads if resized or not base
                                                else base["head_dim"]),
        "intermediate_size": recipe.scratch_intermediate_size or max(64, 64 * round(
            hidden * (base["intermediate_size"] / base["hidden_size"] if base else 4) / 64)),
    }
    if sizes["num_heads"] % sizes["num_kv_heads"]:
        raise RecipeError(f"{sizes['num_heads']} attention heads cannot be shared by "
                          f"{sizes['num_kv_heads']} key/value heads", where="scratch_kv_heads",
                          fix="make scratch_heads a multiple of scratch_kv_heads")
    return sizes


def gemma_config(recipe: Recipe, tokenizer: Any) -> Any:
    """A Gemma 3 text config: the recipe's sizes, the tokenizer's vocabulary and special ids,
    Gemma 3's pattern of five sliding-window layers to one global layer (the last is global)."""
    from transformers import Gemma3TextConfig

    sizes = model_sizes(recipe)
    layers = sizes["num_layers"]
    window = max(8, recipe.max_seq_length // 4) if recipe.tiny else SLIDING_WINDOW
    layer_types = ["full_attention" if (i + 1) % FULL_ATTENTION_EVERY == 0 or i == layers - 1
                   else "sliding_attention" for i in range(layers)]
    ids = tokenizer.convert_tokens_to_ids
    return Gemma3TextConfig(
        vocab_size=len(tokenizer), hidden_size=sizes["hidden_size"],
        intermediate_size=sizes["intermediate_size"], num_hidden_layers=layers,
        num_attention_heads=sizes["num_heads"], num_key_value_heads=sizes["num_kv_heads"],
        head_dim=sizes["head_dim"], query_pre_attn_scalar=sizes["head_dim"],
        sliding_window=window, layer_types=layer_types,
        max_position_embeddings=max(32768, recipe.max_seq_length),
        tie_word_embeddings=True, pad_token_id=ids(PAD), bos_token_id=ids(BOS),
        eos_token_id=[ids(EOS), ids(END_OF_TURN)], architectures=["Gemma3ForCausalLM"])


def encode_sentences(tokenizer: Any, texts: list[str]) -> list[list[int]]:
    """``<bos> text <eos>`` token ids per sentence: what pretraining reads."""
    bos, eos = tokenizer.convert_tokens_to_ids(BOS), tokenizer.convert_tokens_to_ids(EOS)
    ids = tokenizer(texts, add_special_tokens=False)["input_ids"] if texts else []
    return [[bos, *x, eos] for x in ids]


def pack(sequences: list[list[int]], block: int) -> list[list[int]]:
    """Concatenate and cut into blocks of ``block`` tokens (the last one may be shorter), as
    HF's run_clm groups texts: no padding, every token trained."""
    flat = [t for seq in sequences for t in seq]
    return [flat[i:i + block] for i in range(0, len(flat), block) if len(flat[i:i + block]) > 1]


# --------------------------------------------------------------------------- 3. finetune

def mask_spans(text: str, ratio: float, rng: random.Random,
               mask: str = MASK) -> tuple[str, str] | None:
    """(masked sentence, target): ``ratio`` of the words, in spans of 1-3 words with at least
    one kept word between spans, each span replaced by ``mask``; the target lists the spans
    in order, separated by `` | ``. None for sentences under two words."""
    words = text.split()
    if len(words) < 2:
        return None
    n_mask = max(1, min(len(words) - 1, round(ratio * len(words))))
    lengths: list[int] = []
    while sum(lengths) < n_mask:
        lengths.append(min(rng.randint(1, 3), n_mask - sum(lengths)))
    kept = len(words) - n_mask
    if kept < len(lengths) - 1:  # not enough words to separate the spans: one span
        lengths = [n_mask]
    gaps = [0] * (len(lengths) + 1)
    for _ in range(kept - (len(lengths) - 1)):
        gaps[rng.randrange(len(gaps))] += 1
    for i in range(1, len(lengths)):
        gaps[i] += 1
    out: list[str] = []
    spans: list[str] = []
    pos = 0
    for gap, length in zip(gaps, lengths, strict=False):
        out += words[pos:pos + gap]
        pos += gap
        spans.append(" ".join(words[pos:pos + length]))
        out.append(mask)
        pos += length
    out += words[pos:]
    return " ".join(out), SPAN_SEPARATOR.join(spans)


def _chat_example(row: int, prompt: str, target: str, task: str, lang: str) -> Any:
    from recipes.data import Example

    return Example(row, [{"role": "user", "content": prompt},
                         {"role": "assistant", "content": target}],
                   meta={"task": task, "lang": lang})


def infilling_examples(sentences: list[tuple[str, str]], ratio: float, seed: int,
                       mask: str = MASK) -> list[Any]:
    """One masked copy of each sentence (seeded: the same masks every run)."""
    rng = random.Random(seed)
    out = []
    for i, (lang, text) in enumerate(sentences, start=1):
        masked = mask_spans(text, ratio, rng, mask)
        if masked is not None:
            out.append(_chat_example(i, INFILL_PROMPT.format(mask=mask, text=masked[0]),
                                     masked[1], "infilling", lang))
    return out


def clarification_source(recipe: Recipe) -> str | None:
    from recipes.builders import extra_sources

    sources = extra_sources(recipe)
    return sources[0] if sources else None


def clarification_examples(recipe: Recipe) -> list[Any]:
    """Rows of {question, clarified_question, lang} as chat examples (columns can be mapped)."""
    from recipes.data import clean_text, load_rows
    from recipes.train import PROJECT_ROOT

    source = clarification_source(recipe)
    if source is None:
        return []
    rows = load_rows(source, recipe, base_dirs=[PROJECT_ROOT])
    cols = {k: recipe.columns.get(k, k) for k in ("question", "clarified_question", "lang")}
    missing = [c for k, c in cols.items() if k != "lang" and c not in rows[0]]
    if missing:
        raise DataError(
            f"clarification pairs need column(s) {', '.join(repr(c) for c in missing)}; the "
            f"file has {', '.join(repr(c) for c in rows[0])}", where=source,
            fix="name them question and clarified_question, or map them with e.g. "
                "--set columns={question: ambiguous, clarified_question: rewrite}")
    out = []
    for i, row in enumerate(rows, start=1):
        question, clarified = clean_text(row.get(cols["question"])), clean_text(row.get(cols["clarified_question"]))
        if question and clarified:
            out.append(_chat_example(i, CLARIFY_PROMPT.format(text=question), clarified,
                                     "clarification", clean_text(row.get(cols["lang"]))))
    return out


def interleave(groups: list[list[Any]]) -> list[Any]:
    """Round-robin over ``groups``, so the first few items hold every group."""
    out = []
    for i in range(max((len(g) for g in groups), default=0)):
        out += [g[i] for g in groups if i < len(g)]
    return out


# ------------------------------------------------------------------------------ events

class StageWriter:
    """Stamps ``stage`` on the events a stage emits; one events.jsonl holds every stage."""

    def __init__(self, writer: ev.EventWriter, stage: str) -> None:
        self.writer, self.stage = writer, stage

    def emit(self, event: ev.Event) -> None:
        if getattr(event, "stage", None) == "":
            event.stage = self.stage  # type: ignore[attr-defined]
        self.writer.emit(event)


def _eval_callback(every: int, stop: Any, evaluate: Callable[[int], None]) -> Any:
    """Runs ``evaluate(step)`` every ``every`` steps, right after that step's Step event."""
    from transformers import TrainerCallback

    class EvalEvery(TrainerCallback):
        def __init__(self) -> None:
            self.done: set[int] = set()

        def on_step_end(self, args, state, control, **kwargs):
            if every and state.global_step % every == 0 and not stop.requested:
                control.should_log = True  # the step's loss is logged before its eval

        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if (every and step % every == 0 and "loss" in (logs or {}) and step not in self.done
                    and not stop.requested):
                self.done.add(step)
                evaluate(step)

    return EvalEvery()


def _token_count(items: list[Any]) -> int:
    """Tokens recipes.evaluate.mean_loss averages over: labels after the first position."""
    from recipes.data import IGNORE_INDEX

    return sum(sum(1 for x in t.labels[1:] if x != IGNORE_INDEX) for t in items)


def subset_losses(model: Any, subsets: dict[str, list[Any]],
                  batch_size: int) -> tuple[float | None, dict[str, float]]:
    """(token-weighted overall loss, loss per subset) over tokenized items."""
    from recipes.evaluate import mean_loss

    losses, total, count = {}, 0.0, 0
    for name, items in subsets.items():
        loss = mean_loss(model, items, batch_size=batch_size)
        if loss is None:
            continue
        losses[name] = loss
        n = _token_count(items)
        total, count = total + loss * n, count + n
    return (total / count if count else None), losses


def _perplexity(loss: float | None) -> float | None:
    return math.exp(min(loss, 50.0)) if loss is not None else None


# ------------------------------------------------------------------------------ the runner

@dataclass
class StageOutcome:
    finished: bool
    step: int = 0
    final_loss: float | None = None
    output: str = ""  # the stage's product: tokenizer folder, model folder or adapter


class Pipeline:
    """The stages of one run directory; each method runs one stage to its done marker."""

    def __init__(self, recipe: Recipe, run_dir: Path, writer: ev.EventWriter, options: Any,
                 stop: Any, device: str, corpus: Corpus) -> None:
        self.recipe, self.run_dir, self.writer = recipe, run_dir, writer
        self.options, self.stop, self.device, self.corpus = options, stop, device, corpus

    # -- inputs from earlier stages, or from the recipe when run alone ---------------------
    def tokenizer_folder(self) -> Path:
        if "tokenizer" in self.recipe.stages:
            return stage_dir(self.run_dir, "tokenizer")
        return Path(self.recipe.tokenizer_path).expanduser()

    def base_model(self) -> str | Path:
        if "pretrain" in self.recipe.stages:
            return (stage_dir(self.run_dir, "pretrain") / MODEL).resolve()
        local = Path(self.recipe.model).expanduser()
        return local.resolve() if local.is_dir() else self.recipe.model

    def _checkpoint(self, stage: str) -> Path | None:
        return latest_checkpoint(stage_dir(self.run_dir, stage))

    # -- 1. tokenizer ----------------------------------------------------------------------
    def tokenizer(self) -> StageOutcome:
        started = time.time()
        recipe, corpus = self.recipe, self.corpus
        folder = stage_dir(self.run_dir, "tokenizer")
        tokenizer = train_tokenizer([t for _, t in corpus.train], recipe.tokenizer_vocab_size,
                                    folder, character_coverage=1.0 if recipe.tiny else 0.9995)
        measured_on = corpus.held_out() or corpus.train
        stats = fertility(tokenizer, measured_on)
        total = sum(corpus.sampled.values())
        summary = {
            "stage": "tokenizer", "seconds": time.time() - started, "folder": str(folder),
            "model_type": "bpe", "vocab_size": len(tokenizer),
            "requested_vocab_size": recipe.tokenizer_vocab_size,
            "ratios": parse_ratios(recipe), "sampled": corpus.sampled,
            "sampled_share": {k: v / total for k, v in corpus.sampled.items()},
            "available": corpus.available,
            "splits": {"train": len(corpus.train), "val": len(corpus.val),
                       "test": len(corpus.test)},
            "fertility_on": "held-out sentences" if corpus.held_out() else "training sentences",
            "fertility": stats, "notes": corpus.notes,
        }
        values: dict[str, float] = {"vocab_size": len(tokenizer)}
        for lang, n in corpus.sampled.items():
            values[f"sentences/{lang}"] = n
        for lang, row in stats.items():
            values[f"tokens_per_word/{lang}"] = row["tokens_per_word"]
            values[f"chars_per_token/{lang}"] = row["chars_per_token"]
        self.writer.emit(ev.Metrics(stage="tokenizer", values=values))
        _write_json(folder / DONE, {**summary, "corpus": corpus.fingerprint()})
        return StageOutcome(True, output=str(folder))

    # -- 2. pretrain -----------------------------------------------------------------------
    def pretrain(self) -> StageOutcome:
        import torch
        from datasets import Dataset
        from transformers import Gemma3ForCausalLM, PrinterCallback

        from recipes.data import Tokenized
        from recipes.evaluate import generate
        from recipes.train import _event_callback, _training_args, trainer_class

        started = time.time()
        recipe, corpus = self.recipe, self.corpus
        folder = stage_dir(self.run_dir, "pretrain")
        writer = StageWriter(self.writer, "pretrain")
        tokenizer = load_stage_tokenizer(self.tokenizer_folder())
        train_ids = encode_sentences(tokenizer, [t for _, t in corpus.train])
        blocks = pack(train_ids, recipe.max_seq_length)
        val_by_lang: dict[str, list[Tokenized]] = {}
        for (lang, _), ids in zip(corpus.val, encode_sentences(tokenizer, [t for _, t in corpus.val]),
                                  strict=True):
            val_by_lang.setdefault(lang, []).append(Tokenized(0, ids, ids, False))
        stage_recipe = dataclasses.replace(
            recipe, learning_rate=recipe.pretrain_learning_rate, epochs=recipe.pretrain_epochs,
            max_steps=recipe.pretrain_max_steps, optimizer=recipe.pretrain_optimizer)
        per_epoch = max(1, math.ceil(len(blocks) / recipe.batch_size)
                        // recipe.gradient_accumulation_steps)
        total = stage_recipe.max_steps or math.ceil(per_epoch * stage_recipe.epochs)
        lengths = [len(x) for x in train_ids] or [0]
        tokens = sum(lengths)
        by_lang_tokens: dict[str, int] = {}
        for (lang, _), ids in zip(corpus.train, train_ids, strict=True):
            by_lang_tokens[lang] = by_lang_tokens.get(lang, 0) + len(ids)
        writer.emit(ev.Preflight(
            splits={"train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test)},
            tokens_min=min(lengths), tokens_median=float(statistics.median(lengths)),
            tokens_max=max(lengths), trained_token_share=1.0, truncated=0, no_trained_tokens=0,
            max_seq_length=recipe.max_seq_length, total_steps=total,
            notes=[f"{tokens} tokens in {len(corpus.train)} sentences packed into {len(blocks)} "
                   f"blocks of up to {recipe.max_seq_length}; every token is trained",
                   "tokens by language: " + ", ".join(
                       f"{lang} {n / max(tokens, 1):.0%}" for lang, n in by_lang_tokens.items()),
                   *corpus.notes]))

        config = gemma_config(recipe, tokenizer)
        torch.manual_seed(recipe.seed)
        model = Gemma3ForCausalLM(config)
        if recipe.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
        n_params = sum(p.numel() for p in model.parameters())

        prompts = []
        for _, text in interleave([[x for x in corpus.val if x[0] == lang]
                                   for lang in corpus.sampled])[:recipe.eval_prompts]:
            words = text.split()
            cut = max(1, len(words) // 2)
            prompts.append((" ".join(words[:cut]), " ".join(words[cut:])))
        eos_id = tokenizer.convert_tokens_to_ids(EOS)
        evals: dict[int, float | None] = {}
        by_lang: dict[str, float] = {}  # the latest eval's loss per language

        def evaluate(step: int) -> None:
            loss, parts = subset_losses(model, val_by_lang, recipe.eval_batch_size)
            outputs = generate(model, tokenizer, [p for p, _ in prompts],
                               max_new_tokens=recipe.max_new_tokens, stop_ids=[eos_id],
                               batch_size=recipe.eval_batch_size) if prompts else []
            samples = [ev.Sample(prompt=p, reference=r, output=o)
                       for (p, r), o in zip(prompts, outputs, strict=True)]
            evals[step] = loss
            by_lang.clear()
            by_lang.update(parts)
            writer.emit(ev.Eval(step=step, loss=loss, perplexity=_perplexity(loss),
                                samples=samples, subset_losses=parts))

        def dataset(items: list[list[int]]) -> Dataset:
            return Dataset.from_dict({"input_ids": items, "labels": items})

        callbacks = [_event_callback(writer, self.device, self.stop, self.options.stop_at_step,
                                     None),  # type: ignore[arg-type]  (no trainer-run evals)
                     _eval_callback(recipe.eval_steps, self.stop, evaluate)]
        trainer = trainer_class(self.device)(
            model=model, args=_training_args(stage_recipe, folder, self.device, False),
            train_dataset=dataset(blocks), processing_class=tokenizer, callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)
        resume = self._checkpoint("pretrain")
        if resume is None and val_by_lang:
            evaluate(0)  # the random model: eval loss starts near ln(vocab size)
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        step = trainer.state.global_step
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        if self.stop.requested:
            return StageOutcome(False, step=step)
        if val_by_lang and step not in evals:
            evaluate(step)
        out = folder / MODEL
        model.config.use_cache = True
        model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        first, last = _first_last_losses(self.run_dir, "pretrain")
        eval_loss = evals.get(step)
        summary = {
            "stage": "pretrain", "seconds": time.time() - started, "model_dir": str(out),
            "architecture": "Gemma3ForCausalLM", "parameters": n_params,
            "sizes": model_sizes(recipe), "vocab_size": config.vocab_size,
            "sliding_window": config.sliding_window, "layer_types": config.layer_types,
            "steps": step, "blocks": len(blocks), "block_size": recipe.max_seq_length,
            "train_tokens": tokens, "learning_rate": stage_recipe.learning_rate,
            "optimizer": stage_recipe.optimizer,
            "train_loss_first": first, "train_loss_last": last if last is not None else (
                losses[-1] if losses else None),
            "eval_loss": eval_loss, "perplexity": _perplexity(eval_loss),
            "eval_loss_by_language": dict(by_lang),
            "perplexity_by_language": {k: _perplexity(v) for k, v in by_lang.items()},
        }
        values = {k: v for k, v in (("train_loss", summary["train_loss_last"]),
                                    ("eval_loss", eval_loss),
                                    ("perplexity", summary["perplexity"])) if v is not None}
        values.update({f"eval_loss/{k}": v for k, v in by_lang.items()})
        self.writer.emit(ev.Metrics(stage="pretrain", values=values))
        _write_json(folder / DONE, {**summary, "corpus": corpus.fingerprint()})
        return StageOutcome(True, step=step, final_loss=summary["train_loss_last"],
                            output=str(out))

    # -- 3. finetune -----------------------------------------------------------------------
    def finetune_data(self, tokenizer: Any) -> tuple[Any, dict[str, dict[str, int]]]:
        """Both tasks' examples, split (infilling follows the corpus split, so its test
        sentences were never pretrained on), tokenized with only the targets trained."""
        from recipes.data import (
            PreparedData,
            Renderer,
            Splits,
            balance_by_resampling,
            check_trainable,
            preflight_stats,
            split,
            task_token_shares,
            tokenize,
        )

        recipe, corpus = self.recipe, self.corpus
        mask = tokenizer.mask_token or MASK
        infill = {name: infilling_examples(sentences, recipe.infill_mask_ratio,
                                           recipe.seed + offset, mask)
                  for offset, (name, sentences) in enumerate(
                      (("train", corpus.train), ("val", corpus.val), ("test", corpus.test)))}
        clarify = split(clarification_examples(recipe), recipe)
        train = infill["train"] + clarify.train
        random.Random(recipe.seed).shuffle(train)
        splits = Splits(train=train, val=infill["val"] + clarify.val,
                        test=interleave([infill["test"], clarify.test]))
        renderer = Renderer(tokenizer, recipe)
        train_tok = tokenize(splits.train, renderer, recipe.max_seq_length)
        val_tok = tokenize(splits.val, renderer, recipe.max_seq_length)
        stats = preflight_stats(train_tok, val_tok)
        check_trainable(stats, recipe, "finetune data")
        tasks = [ex.meta["task"] for ex in splits.train]
        stats["task_shares"] = {"before": task_token_shares(train_tok, tasks)}
        if recipe.task_balance == "resample":
            train_tok, tasks = balance_by_resampling(train_tok, tasks, recipe.seed)
            stats["task_shares"]["after"] = task_token_shares(train_tok, tasks)
        counts = {task: {name: sum(ex.meta["task"] == task for ex in getattr(splits, name))
                         for name in ("train", "val", "test")} for task in TASKS}
        notes = [f"{task}: " + ", ".join(f"{k} {v}" for k, v in c.items())
                 for task, c in counts.items()]
        if clarification_source(recipe) is None:
            notes.append("no clarification pairs (extra_datasets is empty): infilling only")
        if stats["truncated"]:
            notes.append(f"{stats['truncated']} example(s) longer than max_seq_length="
                         f"{recipe.max_seq_length} were truncated")
        return PreparedData(splits, train_tok, val_tok, stats, notes), counts

    def finetune(self) -> StageOutcome:
        from datasets import Dataset
        from transformers import PrinterCallback

        from recipes.backends import reference as backend
        from recipes.evaluate import adapter_identity, cache_key, cached_eval, run_stage
        from recipes.train import (
            Evaluation,
            _event_callback,
            _training_args,
            inference,
            load_model,
            preflight_event,
            trainer_class,
        )

        started = time.time()
        recipe = self.recipe
        folder = stage_dir(self.run_dir, "finetune")
        folder.mkdir(parents=True, exist_ok=True)
        writer = StageWriter(self.writer, "finetune")
        model_path = self.base_model()
        model, tokenizer = load_model(backend, model_path, recipe, self.device)
        data, counts = self.finetune_data(tokenizer)
        val_by_task: dict[str, list[Any]] = {}
        for ex, tok in zip(data.splits.val, data.val, strict=True):
            val_by_task.setdefault(ex.meta["task"], []).append(tok)
        writer.emit(preflight_event(recipe, data, notes=[
            f"LoRA r={recipe.lora_r} alpha={recipe.lora_alpha} on {model_path}", *data.notes]))

        evaluation = Evaluation(folder, recipe, backend, model, tokenizer, data)
        with model.disable_adapter():
            base_loss, base_losses = subset_losses(model, val_by_task, recipe.eval_batch_size)
        base_result = evaluation.base(model_path, self.writer)
        evals: dict[int, float | None] = {}
        last_parts: dict[str, float] = {}

        def evaluate(step: int) -> None:
            loss, parts = subset_losses(model, val_by_task, recipe.eval_batch_size)
            evals[step] = loss
            last_parts.clear()
            last_parts.update(parts)
            writer.emit(ev.Eval(step=step, loss=loss, perplexity=_perplexity(loss),
                                samples=evaluation.samples(), subset_losses=parts))

        def as_dataset(items: list) -> Dataset:
            return Dataset.from_dict({"input_ids": [t.input_ids for t in items],
                                      "labels": [t.labels for t in items]})

        callbacks = [_event_callback(writer, self.device, self.stop, self.options.stop_at_step,
                                     evaluation),
                     _eval_callback(recipe.eval_steps, self.stop, evaluate)]
        trainer = trainer_class(self.device)(
            model=model, args=_training_args(recipe, folder, self.device, False),
            train_dataset=as_dataset(data.train), processing_class=tokenizer,
            callbacks=callbacks)
        trainer.remove_callback(PrinterCallback)
        resume = self._checkpoint("finetune")
        if resume is None and base_loss is not None:
            # Step 0 is the pretrained model itself (a fresh LoRA adds nothing yet).
            writer.emit(ev.Eval(step=0, loss=base_loss, perplexity=_perplexity(base_loss),
                                subset_losses=base_losses))
        trainer.train(resume_from_checkpoint=str(resume) if resume else None)
        step = trainer.state.global_step
        if self.stop.requested:
            return StageOutcome(False, step=step)
        if data.val and step not in evals:
            evaluate(step)
        adapter_dir = folder / ADAPTER
        model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        shutil.copytree(adapter_dir, self.run_dir / ADAPTER, dirs_exist_ok=True)

        key = cache_key(adapter_identity(adapter_dir), evaluation.items, recipe)

        def tuned_stage() -> Any:
            with inference(backend, model):
                return run_stage("finetuned", model, tokenizer, evaluation.renderer,
                                 evaluation.items, data.val, recipe,
                                 batch_size=recipe.eval_batch_size, labels=evaluation.labels)

        tuned, _ = cached_eval(folder, "finetuned", key, tuned_stage)
        self.writer.emit(ev.Metrics(stage="finetuned", values=tuned.metrics))
        first, last = _first_last_losses(self.run_dir, "finetune")
        summary = {
            "stage": "finetune", "seconds": time.time() - started, "base_model": str(model_path),
            "adapter_dir": str(self.run_dir / ADAPTER), "stage_adapter_dir": str(adapter_dir),
            "steps": step, "lora": {"r": recipe.lora_r, "alpha": recipe.lora_alpha,
                                    "dropout": recipe.lora_dropout,
                                    "target_modules": recipe.target_modules,
                                    "load_in_4bit": recipe.load_in_4bit},
            "examples": counts, "task_shares": data.stats["task_shares"],
            "train_loss_first": first, "train_loss_last": last,
            "eval_loss": evals.get(step), "eval_loss_by_task": dict(last_parts),
            "base_eval_loss_by_task": base_losses,
            "tasks": task_scores(evaluation.items, base_result, tuned, base_losses, last_parts),
            "table": _overall_table(self.run_dir, recipe, evaluation.items, base_result, tuned),
        }
        _write_json(folder / DONE, {**summary, "corpus": self.corpus.fingerprint()})
        return StageOutcome(True, step=step, final_loss=last, output=str(self.run_dir / ADAPTER))


def _first_last_losses(run_dir: Path, stage: str) -> tuple[float | None, float | None]:
    train, _ = stage_curves(run_dir, stage)
    return (train[0][1], train[-1][1]) if train else (None, None)


def task_scores(items: list[Any], base: Any, tuned: Any, base_losses: dict[str, float],
                tuned_losses: dict[str, float]) -> dict[str, Any]:
    """Per task: eval loss and the task's answer metrics, base (adapter off) and fine-tuned."""
    from recipes import metrics as M

    out: dict[str, Any] = {}
    for task in TASKS:
        idx = [i for i, it in enumerate(items) if it.task == task]
        rows: dict[str, dict[str, float | None]] = {
            "eval_loss": {"base": base_losses.get(task), "finetuned": tuned_losses.get(task)}}
        if idx:
            refs = [items[i].reference for i in idx]
            scored = {"finetuned": M.score_corpus([tuned.outputs[i] for i in idx], refs)}
            if base is not None:
                scored["base"] = M.score_corpus([base.outputs[i] for i in idx], refs)
            for name in TASK_METRICS[task]:
                rows[name] = {stage: scored[stage].get(name) if stage in scored else None
                              for stage in ("base", "finetuned")}
        for row in rows.values():
            row.update(M.change(row["base"], row["finetuned"]))
        out[task] = {"test_examples": len(idx), "metrics": rows}
    return out


def _overall_table(run_dir: Path, recipe: Recipe, items: list[Any], base: Any,
                   tuned: Any) -> dict[str, Any]:
    """The usual base vs fine-tuned report (what the TUI's Results screen reads)."""
    from recipes.report import build_report

    report = build_report(run_dir, recipe, items, base, tuned)
    return {k: report[k] for k in ("eval_set", "primary_metric", "metrics", "lengths", "samples",
                                   "improved", "worse")}


# ------------------------------------------------------------------------------ run_stages

def check_sources(recipe: Recipe) -> None:
    """Fail before anything starts when a stage's input is missing."""
    from recipes.data import resolve_path
    from recipes.hub import ensure_available
    from recipes.train import PROJECT_ROOT

    if "pretrain" in recipe.stages and "tokenizer" not in recipe.stages:
        if not recipe.tokenizer_path:
            raise RecipeError("the pretrain stage needs a tokenizer", where="tokenizer_path",
                              fix="add the tokenizer stage, or --set tokenizer_path="
                                  "runs/<id>/stages/tokenizer")
        load_path = Path(recipe.tokenizer_path).expanduser()
        if not (load_path / "tokenizer.json").is_file():
            raise RecipeError("no trained tokenizer in this folder (tokenizer.json missing)",
                              where=f"tokenizer_path={recipe.tokenizer_path}",
                              fix="point it at runs/<id>/stages/tokenizer of a finished "
                                  "tokenizer stage")
    if "finetune" in recipe.stages and "pretrain" not in recipe.stages:
        local = Path(recipe.model).expanduser()
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise RecipeError("no model in this folder (config.json missing)",
                                  where=f"model={recipe.model}",
                                  fix="point it at runs/<id>/stages/pretrain/model")
        elif recipe.tiny or recipe.model.startswith((".", "/", "~")) or recipe.model.count("/") > 1:
            raise RecipeError(
                f"the finetune stage alone needs a pretrained model folder; '{recipe.model}' "
                "is not one", where="model",
                fix="--set model=runs/<id>/stages/pretrain/model (a finished pretrain stage)")
        else:
            ensure_available(recipe.model, kind="model", field="model",
                             local_hint="runs/<id>/stages/pretrain/model")
    sources = [corpus_source(recipe)]
    if "finetune" in recipe.stages and clarification_source(recipe):
        sources.append(clarification_source(recipe))
    for source in sources:
        path = resolve_path(source, base_dirs=[PROJECT_ROOT])
        if path is None:
            ensure_available(source, kind="dataset", field="dataset",
                             local_hint="/path/to/corpus.jsonl")
        elif not path.exists():
            raise DataError("dataset file not found", where=str(path),
                            fix="check the path, or run offline with --tiny (uses the samples "
                                "in data/)")


def check_same_corpus(run_dir: Path, recipe: Recipe, corpus: Corpus) -> None:
    """A resumed run must read the sentences its finished stages read (held-out ones
    included), or validation sentences could leak into training."""
    for stage in recipe.stages:
        done = read_done(run_dir, stage)
        if done and done.get("corpus") not in (None, corpus.fingerprint()):
            raise RunDirError(
                f"the corpus sample differs from the one the {stage} stage used",
                where=str(run_dir), fix="restore the corpus file this run was started with, or "
                                        "start a new run")


def current_stage(recipe: Recipe, run_dir: Path | None) -> str | None:
    """The first stage of the recipe without a done marker (None: every stage is done)."""
    if run_dir is None:
        return recipe.stages[0]
    return next((s for s in recipe.stages if not is_done(run_dir, s)), None)


def run_stages(recipe: Recipe, options: Any) -> Path:
    """Run (or resume) the recipe's stages in order; returns the run directory."""
    from recipes.train import (
        StopFlag,
        advice_for,
        describe_device,
        open_run,
        quiet_libraries,
        train_device,
    )

    check_stages(recipe)
    if options.backend == "unsloth":
        raise BackendError("gemma3-scratch pretrains all parameters and runs on the reference "
                           "backend", where="--backend",
                           fix="use --backend auto or reference")
    if options.resume_dir is not None:
        if not (options.resume_dir / RECIPE_FILE).is_file():
            raise RunDirError("not a slothlab run (recipe.yaml missing)",
                              where=str(options.resume_dir),
                              fix="pass a folder created by `slothlab --recipe ...` (runs/<id>)")
        if current_stage(recipe, options.resume_dir) is None:
            raise RunDirError(
                f"this run already finished every stage ({', '.join(recipe.stages)})",
                where=str(options.resume_dir),
                fix="start a new run; to redo a later stage on this run's output, e.g. "
                    f"--set stages=[finetune] --set model={options.resume_dir}/{STAGES_DIR}/"
                    f"pretrain/{MODEL}")
    check_sources(recipe)
    quiet_libraries()
    device = train_device()
    corpus = load_corpus(recipe)  # errors in the data stop us before a run directory exists
    if options.resume_dir is not None:
        check_same_corpus(options.resume_dir, recipe, corpus)

    run_dir, writer = open_run(recipe, options)
    stop = StopFlag()
    restore_sigint = stop.install()
    started = time.time()
    outcome = StageOutcome(True)
    try:
        now = current_stage(recipe, run_dir)
        checkpoint = latest_checkpoint(stage_dir(run_dir, now)) if now else None
        writer.emit(ev.RunStarted(
            run_dir=str(run_dir), recipe=recipe.name, backend="reference",
            backend_reason=BACKEND_REASON, device=describe_device(device), tiny=recipe.tiny,
            resumed_from_step=int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0,
            pid=os.getpid()))
        pipeline = Pipeline(recipe, run_dir, writer, options, stop, device, corpus)
        for stage in recipe.stages:
            if is_done(run_dir, stage):
                outcome = StageOutcome(True, output=_stage_output(run_dir, stage))
                continue
            stage_dir(run_dir, stage).mkdir(parents=True, exist_ok=True)
            outcome = getattr(pipeline, stage)()
            if not outcome.finished or (stop.requested and stage != recipe.stages[-1]):
                write_report(run_dir, recipe)  # what the finished stages measured
                found = latest_checkpoint(stage_dir(run_dir, stage))
                writer.emit(ev.Stopped(
                    step=outcome.step, checkpoint=str(found) if found and not outcome.finished
                    else None, resume_command=f"slothlab --resume {run_dir}"))
                return run_dir
        report = write_report(run_dir, recipe)
        writer.emit(ev.Finished(step=outcome.step, final_loss=outcome.final_loss,
                                adapter_dir=outcome.output, seconds=time.time() - started,
                                report=report))
        return run_dir
    except SlothlabError as exc:
        writer.emit(ev.Failed(error=exc.what if not exc.where else f"{exc.where}: {exc.what}",
                              advice=exc.fix or ""))
        raise
    except KeyboardInterrupt:
        writer.emit(ev.Failed(error="interrupted twice: stopped without a checkpoint",
                              advice=f"resume from the last saved checkpoint: slothlab --resume "
                                     f"{run_dir}"))
        raise
    except BaseException as exc:
        writer.emit(ev.Failed(error=f"{type(exc).__name__}: {exc}", advice=advice_for(exc)))
        raise
    finally:
        restore_sigint()
        writer.close()


def _stage_output(run_dir: Path, stage: str) -> str:
    done = read_done(run_dir, stage) or {}
    return str(done.get("folder") or done.get("model_dir") or done.get("adapter_dir") or "")


# ------------------------------------------------------------------------------ the report

def stage_curves(run_dir: Path, stage: str) -> tuple[list[tuple[int, float]],
                                                     list[tuple[int, float, dict[str, float]]]]:
    """(train, eval) points of one stage from the event stream; the last value per step wins
    (a resumed stage repeats the steps after its checkpoint)."""
    train: dict[int, float] = {}
    evals: dict[int, tuple[float, dict[str, float]]] = {}
    path = run_dir / EVENTS_FILE
    for event in ev.read_events(path) if path.exists() else []:
        if getattr(event, "stage", None) != stage:
            continue
        if isinstance(event, ev.Step):
            train[event.step] = event.loss
        elif isinstance(event, ev.Eval) and event.loss is not None:
            evals[event.step] = (event.loss, event.subset_losses)
    return sorted(train.items()), [(s, loss, parts) for s, (loss, parts) in sorted(evals.items())]


def _plot(axes: Any, run_dir: Path, stage: str, title: str) -> bool:
    train, evals = stage_curves(run_dir, stage)
    if not train:
        return False
    axes.plot(*zip(*train, strict=True), label="train", linewidth=1.4)
    if evals:
        axes.plot([s for s, _, _ in evals], [x for _, x, _ in evals], "o-", label="eval",
                  linewidth=1.4)
        for name in sorted({k for _, _, parts in evals for k in parts}):
            points = [(s, parts[name]) for s, _, parts in evals if name in parts]
            axes.plot(*zip(*points, strict=True), "--", marker=".", linewidth=1,
                      label=f"eval: {name}")
    axes.set_xlabel("step")
    axes.set_ylabel("loss")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    return True


def plot_losses(run_dir: Path, recipe: Recipe) -> dict[str, str]:
    """loss_pretrain.png and loss_finetune.png, and loss.png with both side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    titles = {"pretrain": "pretraining (causal LM, all tokens)",
              "finetune": "fine-tuning (LoRA, targets only)"}
    written: dict[str, str] = {}
    for stage, title in titles.items():
        fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
        if _plot(ax, run_dir, stage, f"{recipe.name}: {title}"):
            fig.tight_layout()
            fig.savefig(run_dir / f"loss_{stage}.png")
            written[stage] = str(run_dir / f"loss_{stage}.png")
        plt.close(fig)
    if written:
        fig, axes = plt.subplots(1, len(written), figsize=(7 * len(written), 4), dpi=110,
                                 squeeze=False)
        for ax, stage in zip(axes[0], written, strict=True):
            _plot(ax, run_dir, stage, titles[stage])
        fig.tight_layout()
        fig.savefig(run_dir / "loss.png")
        plt.close(fig)
        written["all"] = str(run_dir / "loss.png")
    return written


def build_scratch_report(run_dir: Path, recipe: Recipe) -> dict[str, Any]:
    stages = {s: d for s in STAGES if (d := read_done(run_dir, s)) is not None}
    for stage in ("pretrain", "finetune"):
        if stage in stages:
            train, evals = stage_curves(run_dir, stage)
            stages[stage]["curve"] = {"train": train,
                                      "eval": [[s, x, parts] for s, x, parts in evals]}
    if "pretrain" in stages:  # the last eval's continuations of held-out sentences
        last = [e for e in ev.read_events(run_dir / EVENTS_FILE)
                if isinstance(e, ev.Eval) and e.stage == "pretrain"]
        stages["pretrain"]["samples"] = [dataclasses.asdict(x) for x in
                                         (last[-1].samples if last else [])]
    report: dict[str, Any] = {"recipe": recipe.name, "model": recipe.model, "tiny": recipe.tiny,
                              "stages_run": recipe.stages, "stages": stages}
    table = stages.get("finetune", {}).get("table")
    if table:
        report.update(table)  # metrics / samples for front ends that read one table
    report["artifacts"] = {
        **({"adapter": str(run_dir / ADAPTER)} if "finetune" in stages else {}),
        "report_md": str(run_dir / "report.md"),
        "report_json": str(run_dir / "report.json"), "loss_png": str(run_dir / "loss.png"),
        **{f"{s}_dir": str(stage_dir(run_dir, s)) for s in stages}}
    return report


def write_report(run_dir: Path, recipe: Recipe) -> str:
    """report.json, report.md and the loss plots from the finished stages; report.md's path."""
    plots = plot_losses(run_dir, recipe)
    report = build_scratch_report(run_dir, recipe)
    report["artifacts"].update({f"loss_{k}_png": v for k, v in plots.items() if k != "all"})
    (run_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                         encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report, plots), encoding="utf-8")
    return str(run_dir / "report.md")


def _num(value: float | None, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def _cell(text: str, limit: int = 200) -> str:
    """Text for a markdown table cell; <mask> and other markers shown, not read as HTML."""
    from recipes.safe_text import safe_text

    text = text if len(text) <= limit else text[:limit] + " …"
    text = safe_text(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", "<br>") or "*(empty)*"


LANG_NAMES = {"as": "Assamese", "hi": "Hindi", "en": "English"}
METRIC_LABELS = {"eval_loss": "Eval loss", "exact_match": "Exact match", "token_f1": "Token F1",
                 "chrf": "chrF", "rougeL": "ROUGE-L", "bleu": "BLEU"}


def render_markdown(report: dict[str, Any], plots: dict[str, str]) -> str:
    stages = report["stages"]
    lines = [f"# {report['recipe']}: tokenizer, pretraining, fine-tuning", "",
             f"Stages in this run: {', '.join(report['stages_run'])}"
             f"{' (tiny mode)' if report['tiny'] else ''}; model `{report['model']}`.", "",
             "| Stage | Seconds | Output |", "|---|---|---|"]
    for name, done in stages.items():
        output = done.get("folder") or done.get("model_dir") or done.get("adapter_dir")
        lines.append(f"| {name} | {done['seconds']:.1f} | `{output}` |")
    lines.append("")
    tok = stages.get("tokenizer")
    if tok:
        sampled = ", ".join(f"{lang} {n} ({tok['sampled_share'][lang]:.0%})"
                            for lang, n in tok["sampled"].items())
        lines += ["## 1. Tokenizer", "",
                  f"SentencePiece BPE, vocabulary {tok['vocab_size']} (asked "
                  f"{tok['requested_vocab_size']}), byte fallback, Gemma special tokens. "
                  f"Sentences sampled: {sampled}; trained on the {tok['splits']['train']} "
                  f"training sentences.", "",
                  f"Fertility on {tok['fertility_on']}:", "",
                  "| Language | Sentences | Words | Tokens | Tokens / sentence | "
                  "Tokens / word | Characters / token | Byte-fallback tokens |",
                  "|---|---|---|---|---|---|---|---|"]
        for lang, row in tok["fertility"].items():
            lines.append(f"| {LANG_NAMES.get(lang, lang)} | {row['sentences']} | {row['words']} | "
                         f"{row['tokens']} | {row['tokens_per_sentence']:.1f} | "
                         f"{row['tokens_per_word']:.2f} | {row['chars_per_token']:.2f} | "
                         f"{row['byte_fallback_share']:.1%} |")
        lines += [f"- note: {n}" for n in tok.get("notes", [])]
        lines.append("")
    pre = stages.get("pretrain")
    if pre:
        sizes = pre["sizes"]
        lines += ["## 2. Pretraining", "",
                  f"`Gemma3ForCausalLM` from a config, {pre['parameters']:,} parameters "
                  f"(hidden {sizes['hidden_size']}, {sizes['num_layers']} layers, "
                  f"{sizes['num_heads']} heads / {sizes['num_kv_heads']} KV, head "
                  f"{sizes['head_dim']}, MLP {sizes['intermediate_size']}, vocab "
                  f"{pre['vocab_size']}); causal LM loss on every token, all parameters, "
                  f"{pre['optimizer']} at {pre['learning_rate']:g}; {pre['train_tokens']:,} "
                  f"tokens in {pre['blocks']} blocks of {pre['block_size']}.", "",
                  "| | Value |", "|---|---|",
                  f"| Steps | {pre['steps']} |",
                  f"| Train loss (first → last) | {_num(pre['train_loss_first'])} → "
                  f"{_num(pre['train_loss_last'])} |",
                  f"| Eval loss | {_num(pre['eval_loss'])} |",
                  f"| Eval perplexity | {_num(pre['perplexity'], 2)} |", ""]
        if pre["eval_loss_by_language"]:
            lines += ["| Language | Eval loss | Perplexity |", "|---|---|---|"]
            for lang, loss in pre["eval_loss_by_language"].items():
                lines.append(f"| {LANG_NAMES.get(lang, lang)} | {_num(loss)} | "
                             f"{_num(pre['perplexity_by_language'][lang], 2)} |")
            lines.append("")
        if "pretrain" in plots:
            lines += ["![pretraining loss](loss_pretrain.png)", ""]
        if pre.get("samples"):
            lines += ["Greedy continuations of held-out sentences (last eval):", "",
                      "| Prompt | Reference | Output |", "|---|---|---|"]
            lines += [f"| {_cell(x['prompt'])} | {_cell(x['reference'])} | {_cell(x['output'])} |"
                      for x in pre["samples"]]
            lines.append("")
    fine = stages.get("finetune")
    if fine:
        lora = fine["lora"]
        examples = "; ".join(f"{task} " + "/".join(str(v) for v in c.values())
                             for task, c in fine["examples"].items())
        lines += ["## 3. Fine-tuning (LoRA)", "",
                  f"LoRA r={lora['r']}, alpha={lora['alpha']} on {', '.join(lora['target_modules'])}"
                  f" of the pretrained model ({'4-bit' if lora['load_in_4bit'] else 'unquantised'}"
                  f"); loss on the targets only. Examples train/val/test: {examples}. "
                  f"{fine['steps']} steps, train loss {_num(fine['train_loss_first'])} → "
                  f"{_num(fine['train_loss_last'])}. Base = the pretrained model (adapter off); "
                  "greedy decoding on the test examples.", "",
                  "| Task | Metric | Base | Fine-tuned | Change |", "|---|---|---|---|---|"]
        for task, scores in fine["tasks"].items():
            for name, row in scores["metrics"].items():
                change = "–" if row["change"] is None else f"{row['change']:+.4f}"
                digits = 2 if name in ("chrf", "bleu") else 4
                lines.append(f"| {task} | {METRIC_LABELS.get(name, name)} | "
                             f"{_num(row['base'], digits)} | {_num(row['finetuned'], digits)} | "
                             f"{change} |")
        lines.append("")
        if "finetune" in plots:
            lines += ["![fine-tuning loss](loss_finetune.png)", ""]
        samples = fine.get("table", {}).get("samples", [])
        shown = interleave([[s for s in samples if s["prompt"].startswith(p.split("{")[0])]
                            for p in (INFILL_PROMPT, CLARIFY_PROMPT)])[:6]
        if shown:
            lines += ["Examples:", "", "| Prompt | Reference | Base | Fine-tuned |",
                      "|---|---|---|---|"]
            for s in shown:
                lines.append(f"| {_cell(s['prompt'])} | {_cell(s['reference'])} | "
                             f"{_cell(s.get('base', ''))} | {_cell(s['finetuned'])} |")
            lines.append("")
    lines += ["## Artifacts", ""]
    lines += [f"- {name}: `{path}`" for name, path in report["artifacts"].items()]
    lines.append("")
    return "\n".join(lines)
