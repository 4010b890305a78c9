"""SentencePiece BPE tokenizers: train one on text, wrap it as a fast transformers tokenizer.

    from recipes.spm import GEMMA, LLAMA, bounded_sample, train_sentencepiece, wrap_sentencepiece
    model_file = train_sentencepiece(bounded_sample(texts), folder, LLAMA, vocab_size=2048,
                                     pieces={"unk": "<unk>", "bos": "<s>", "eos": "</s>"})
    tokenizer = wrap_sentencepiece(model_file, LLAMA, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="</s>")

The trained ``tokenizer.model`` is what llama.cpp's converter reads to build a GGUF vocabulary
(it recognises SentencePiece tokenizers by that file, but byte-level BPE ones only by hashing
their output against real models it knows). A layout copies a real family's conventions: where
its control tokens sit, whether a space is put before the first word, which transformers class
wraps it. Used by tiny mode (TinyLlama, InkubaLM, Gemma miniatures) and by gemma3-scratch's
tokenizer stage.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from recipes.errors import RecipeError

# Bounds on what a tokenizer is trained on: one huge cell (a 5 MB text) must not stall training,
# and a miniature's 2k-token vocabulary learns nothing more from megabytes of text.
MAX_TEXT_CHARS = 4_000
MAX_TOTAL_CHARS = 2_000_000
# SentencePiece silently skips training lines longer than this (bytes); lines are cut below it.
MAX_LINE_BYTES = 16_384


@dataclass(frozen=True)
class SpmLayout:
    """A model family's SentencePiece conventions."""

    name: str
    ids: dict[str, int]  # SentencePiece roles unk / bos / eos / pad -> id (absent = none)
    dummy_prefix: bool  # a "▁" (space) before the first word, as Llama-2's tokenizer does
    tokenizer_class: str  # the transformers class that wraps it


# Llama-2 / TinyLlama / InkubaLM: <unk>=0 <s>=1 </s>=2, no pad piece, a dummy prefix.
LLAMA = SpmLayout("llama", {"unk": 0, "bos": 1, "eos": 2}, True, "LlamaTokenizer")
# Gemma: <pad>=0 <eos>=1 <bos>=2 <unk>=3, spaces kept exactly as written.
GEMMA = SpmLayout("gemma", {"pad": 0, "eos": 1, "bos": 2, "unk": 3}, False, "GemmaTokenizer")


def bounded_sample(texts: Iterable[str], max_text_chars: int = MAX_TEXT_CHARS,
                   max_total_chars: int = MAX_TOTAL_CHARS) -> list[str]:
    """``texts`` cut to ``max_text_chars`` each and thinned evenly to ``max_total_chars`` in all."""
    cut = [t[:max_text_chars] for t in texts if t]
    total = sum(len(t) for t in cut)
    if total <= max_total_chars:
        return cut
    stride = -(-total // max_total_chars)  # ceil: keep every stride-th text, spread over all
    kept: list[str] = []
    size = 0
    for text in cut[::stride]:
        if size + len(text) > max_total_chars:
            break
        kept.append(text)
        size += len(text)
    return kept


def training_lines(texts: Iterable[str]) -> list[str]:
    """SentencePiece trains on lines: split on newlines (which it never sees; byte fallback
    encodes them, as in the real models) and cut lines it would otherwise skip."""
    lines = []
    for text in texts:
        for line in text.split("\n"):
            if line.strip():
                lines.append(line.encode("utf-8")[:MAX_LINE_BYTES - 4].decode("utf-8", "ignore"))
    return lines


def train_sentencepiece(texts: list[str], folder: Path, layout: SpmLayout, *, vocab_size: int,
                        pieces: dict[str, str], user_defined: Iterable[str] = (),
                        character_coverage: float = 1.0, exact_vocab_size: bool = True,
                        where: str = "tokenizer_vocab_size",
                        more_text: str = "give it more text") -> Path:
    """Train a SentencePiece BPE model on ``texts``; returns ``folder/tokenizer.model``.

    ``pieces`` names the control tokens of ``layout`` (``{"bos": "<s>", ...}``);
    ``user_defined`` tokens are never split and get the ids right after them. With
    ``exact_vocab_size=False`` a corpus too small for ``vocab_size`` gives a smaller vocabulary
    instead of an error (tiny mode). Unknown characters fall back to bytes and digits are split,
    as in Llama-2 and Gemma. Errors are RecipeErrors naming ``where`` (the field to change) and
    ``more_text`` (how to get more text) in their advice.
    """
    import sentencepiece as spm

    missing = sorted(set(layout.ids) - set(pieces))
    if missing:
        raise ValueError(f"layout {layout.name} needs pieces for {', '.join(missing)}")
    lines = training_lines(texts)
    if not lines:
        raise RecipeError("no text to train a tokenizer on", where=where,
                          fix="give the recipe a dataset with some text in it")
    folder.mkdir(parents=True, exist_ok=True)
    ids = {f"{role}_id": layout.ids.get(role, -1) for role in ("unk", "bos", "eos", "pad")}
    names = {f"{role}_piece": pieces[role] for role in layout.ids}
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_prefix=str(folder / "tokenizer"),
            model_type="bpe", vocab_size=vocab_size, hard_vocab_limit=exact_vocab_size,
            character_coverage=character_coverage, byte_fallback=True, split_digits=True,
            add_dummy_prefix=layout.dummy_prefix, remove_extra_whitespaces=False,
            allow_whitespace_only_pieces=True, normalization_rule_name="identity",
            user_defined_symbols=list(user_defined), max_sentence_length=MAX_LINE_BYTES,
            input_sentence_size=0, shuffle_input_sentence=False,  # already sampled
            num_threads=max(1, min(os.cpu_count() or 1, 16)), minloglevel=2, **ids, **names)
    except RuntimeError as exc:
        needed = re.search(r"smaller than required_chars\. \d+ vs (\d+)", str(exc))
        if needed:  # every character and the 256 byte tokens need an id of their own
            raise RecipeError(
                f"a {vocab_size}-token vocabulary cannot hold the corpus's characters, the "
                f"byte-fallback tokens and the special tokens ({needed[1]} ids)",
                where=where, fix=f"set {where} > {needed[1]}",
            ) from None
        raise RecipeError(
            f"SentencePiece could not train a {vocab_size}-token vocabulary on {len(lines)} "
            f"lines ({str(exc).strip().splitlines()[-1][-200:]})", where=where,
            fix=f"lower {where}, or {more_text}",
        ) from None
    (folder / "tokenizer.vocab").unlink(missing_ok=True)  # a text dump nobody reads
    return folder / "tokenizer.model"


def wrap_sentencepiece(model_file: Path, layout: SpmLayout, *, bos_token: str, eos_token: str,
                       unk_token: str, pad_token: str | None,
                       extra_special_tokens: Iterable[str] = (),
                       chat_template: str | None = None, **special: str) -> Any:
    """The SentencePiece model as a fast transformers tokenizer of ``layout``'s class.

    It adds BOS to every encoded text (as Llama and Gemma do); ``eos_token`` may differ from
    the model's SentencePiece EOS piece (Gemma chat ends turns with <end_of_turn>). Extra
    keyword tokens (``mask_token="<mask>"``) are passed on. Save it next to ``model_file`` so
    llama.cpp's converter finds ``tokenizer.model``.
    """
    import transformers
    from transformers.tokenization_utils_sentencepiece import SentencePieceExtractor

    vocab, _, merges = SentencePieceExtractor(str(model_file)).extract()
    cls = getattr(transformers, layout.tokenizer_class)
    extra = [t for t in extra_special_tokens if t]
    tokenizer = cls(vocab=vocab, merges=merges, add_bos_token=True, add_eos_token=False,
                    bos_token=bos_token, eos_token=eos_token, unk_token=unk_token,
                    pad_token=pad_token, extra_special_tokens=extra or None,
                    clean_up_tokenization_spaces=False, **special)
    if chat_template:
        tokenizer.chat_template = chat_template
    return tokenizer
