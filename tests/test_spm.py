"""SentencePiece tokenizers (recipes/spm.py) and tiny mode's tokenizers of the real kind."""

from __future__ import annotations

from pathlib import Path

import pytest

from recipes.models import CHAT_TEMPLATES, model_info
from recipes.spm import (
    GEMMA,
    LLAMA,
    MAX_TEXT_CHARS,
    bounded_sample,
    train_sentencepiece,
    wrap_sentencepiece,
)
from recipes.tiny import train_tokenizer

TEXTS = [f"<|user|>\nWhat is {a} plus {b}?</s>\n<|assistant|>\n{a} plus {b} is {a + b}.</s>\n"
         for a in range(12) for b in range(12)]


def test_bounded_sample_caps_each_text_and_the_total() -> None:
    texts = ["x" * 5_000_000, *(["short text"] * 10)]
    sample = bounded_sample(texts, max_text_chars=1000, max_total_chars=5000)
    assert sample[0] == "x" * 1000
    assert all(len(t) <= 1000 for t in sample)
    assert sum(len(t) for t in sample) <= 5000
    many = [f"text {i} " * 20 for i in range(1000)]
    thinned = bounded_sample(many, max_total_chars=20_000)
    assert sum(map(len, thinned)) <= 20_000
    assert thinned[0] == many[0] and thinned[-1] != many[len(thinned) - 1], "spread, not a prefix"


def test_llama_layout_matches_sentencepiece_itself(tmp_path: Path) -> None:
    """The wrapped tokenizer encodes exactly as the SentencePiece model (plus BOS)."""
    import sentencepiece as spm

    model_file = train_sentencepiece(TEXTS, tmp_path, LLAMA, vocab_size=400,
                                     pieces={"unk": "<unk>", "bos": "<s>", "eos": "</s>"},
                                     exact_vocab_size=False)
    tok = wrap_sentencepiece(model_file, LLAMA, bos_token="<s>", eos_token="</s>",
                             unk_token="<unk>", pad_token="</s>")
    sp = spm.SentencePieceProcessor(model_file=str(model_file))
    assert [sp.id_to_piece(i) for i in range(3)] == ["<unk>", "<s>", "</s>"]
    for text in ["What is 3 plus 4?", "Ünïcode ✓ falls back to bytes", "two  spaces,  twice"]:
        assert tok(text)["input_ids"] == [1, *sp.encode(text)]
        assert tok.decode(tok(text)["input_ids"], skip_special_tokens=True) == text


def test_gemma_layout_keeps_gemma_ids(tmp_path: Path) -> None:
    model_file = train_sentencepiece(
        TEXTS, tmp_path, GEMMA, vocab_size=400, exact_vocab_size=False,
        pieces={"pad": "<pad>", "eos": "<eos>", "bos": "<bos>", "unk": "<unk>"},
        user_defined=["<mask>", "<start_of_turn>", "<end_of_turn>"])
    tok = wrap_sentencepiece(model_file, GEMMA, bos_token="<bos>", eos_token="<end_of_turn>",
                             unk_token="<unk>", pad_token="<pad>", mask_token="<mask>",
                             extra_special_tokens=["<start_of_turn>", "<eos>"])
    assert tok.convert_ids_to_tokens([0, 1, 2, 3, 4]) == ["<pad>", "<eos>", "<bos>", "<unk>",
                                                          "<mask>"]
    ids = tok("<start_of_turn>user\nhi<end_of_turn>")["input_ids"]
    assert ids[0] == 2 and tok.convert_tokens_to_ids("<start_of_turn>") == ids[1]
    assert ids[-1] == tok.eos_token_id, "<end_of_turn> is one token and the chat EOS"


def test_vocabulary_too_small_for_the_characters_is_a_recipe_error(tmp_path: Path) -> None:
    from recipes.errors import RecipeError

    with pytest.raises(RecipeError) as info:
        train_sentencepiece(TEXTS, tmp_path, LLAMA, vocab_size=100,
                            pieces={"unk": "<unk>", "bos": "<s>", "eos": "</s>"})
    assert info.value.where == "tokenizer_vocab_size" and "set tokenizer_vocab_size >" in info.value.fix


@pytest.mark.parametrize("model, kind", [
    ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "sentencepiece"),
    ("google/gemma-3-270m", "sentencepiece"),
    ("meta-llama/Llama-3.2-3B-Instruct", "bpe"),
    ("LiquidAI/LFM2-1.2B", "bpe"),
])
def test_tiny_tokenizers_are_of_the_real_models_kind(tmp_path: Path, model: str,
                                                     kind: str) -> None:
    info = model_info(model)
    assert info.tokenizer_kind == kind
    tok = train_tokenizer(info, TEXTS, 2048, tmp_path)
    tok.save_pretrained(tmp_path)
    assert (tmp_path / "tokenizer.model").is_file() == (kind == "sentencepiece")
    assert tok.chat_template == CHAT_TEMPLATES[info.chat_format]
    for special in (info.bos_token, info.eos_token, info.pad_token, *info.extra_special_tokens):
        ids = tok(special, add_special_tokens=False)["input_ids"]
        assert len(ids) == 1 and tok.convert_ids_to_tokens(ids) == [special], special


def test_one_huge_cell_does_not_stall_tokenizer_training(tmp_path: Path) -> None:
    """Issue 18: a 5 MB cell used to hang tiny mode's tokenizer; it is cut to a bounded size."""
    huge = "word " * 1_000_000
    for model in ("TinyLlama/TinyLlama-1.1B-Chat-v1.0", "meta-llama/Llama-3.2-3B-Instruct"):
        tok = train_tokenizer(model_info(model), [huge, *TEXTS], 2048, tmp_path / model[:4])
        assert len(tok) > 300
    assert len(bounded_sample([huge])[0]) == MAX_TEXT_CHARS
