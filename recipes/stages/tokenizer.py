"""The tokenizer stage: a SentencePiece BPE vocabulary trained on the corpus sample (Gemma style).

Byte fallback, digits split, spaces kept as they are, Gemma's special tokens and ``<mask>``;
wrapped as a fast transformers ``GemmaTokenizer`` (offsets work) with the Gemma chat template,
and measured per language (tokens per word, characters per token, byte-fallback share) on the
held-out sentences.
"""

from __future__ import annotations

import re
import time
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.context import RunContext, StageOutcome
from recipes.corpus import parse_ratios
from recipes.errors import RunDirError
from recipes.rundir import DONE, write_json

# Gemma's special tokens, in Gemma's id order (pad 0, eos 1, bos 2, unk 3, mask 4), then the
# chat-turn markers. Generation for chat stops at <end_of_turn>; pretraining text ends in <eos>.
PAD, EOS, BOS, UNK, MASK = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>"
START_OF_TURN, END_OF_TURN = "<start_of_turn>", "<end_of_turn>"
BYTE_PIECE = re.compile(r"^<0x[0-9A-F]{2}>$")


def run(ctx: RunContext) -> StageOutcome:
    started = time.time()
    recipe, corpus = ctx.recipe, ctx.corpus
    folder = ctx.folder("tokenizer")
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
        "splits": {"train": len(corpus.train), "val": len(corpus.val), "test": len(corpus.test)},
        "fertility_on": "held-out sentences" if corpus.held_out() else "training sentences",
        "fertility": stats, "notes": corpus.notes,
    }
    values: dict[str, float] = {"vocab_size": len(tokenizer)}
    for lang, n in corpus.sampled.items():
        values[f"sentences/{lang}"] = n
    for lang, row in stats.items():
        values[f"tokens_per_word/{lang}"] = row["tokens_per_word"]
        values[f"chars_per_token/{lang}"] = row["chars_per_token"]
    ctx.writer.emit(ev.Metrics(stage="tokenizer", values=values))
    write_json(folder / DONE, {**summary, "corpus": corpus.fingerprint()})
    return StageOutcome(True, output=str(folder))


def train_tokenizer(sentences: list[str], vocab_size: int, folder: Path, *,
                    character_coverage: float = 0.9995) -> Any:
    """SentencePiece BPE on ``sentences`` with Gemma's settings (byte fallback, digits split,
    spaces kept as they are), saved in ``folder`` as tokenizer.model and as a transformers
    GemmaTokenizer (tokenizer.json + chat template): BOS added to every text, <end_of_turn> as
    EOS for chat. Returns the latter."""
    from recipes.models import CHAT_TEMPLATES
    from recipes.spm import GEMMA, train_sentencepiece, wrap_sentencepiece

    model_file = train_sentencepiece(
        sentences, folder, GEMMA, vocab_size=vocab_size,
        pieces={"pad": PAD, "eos": EOS, "bos": BOS, "unk": UNK},
        user_defined=[MASK, START_OF_TURN, END_OF_TURN], character_coverage=character_coverage,
        more_text="sample more sentences (corpus_sentences)")
    tokenizer = wrap_sentencepiece(
        model_file, GEMMA, bos_token=BOS, eos_token=END_OF_TURN, unk_token=UNK, pad_token=PAD,
        mask_token=MASK, extra_special_tokens=[START_OF_TURN, EOS],
        chat_template=CHAT_TEMPLATES["gemma"])
    tokenizer.save_pretrained(str(folder))
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
