"""Tiny mode: a random miniature of a recipe's model, with a tokenizer trained on its sample.

    from recipes.tiny import build_tiny_model
    folder = build_tiny_model(recipe, sample_texts, cache_root)

The miniature keeps what the pipeline depends on: the model type and class, the module names
LoRA targets (q_proj ... down_proj), tied or untied embeddings, the chat template and the
real special tokens (bos/eos/pad, the template's markers), and the kind of tokenizer: a small
SentencePiece model where the real one is SentencePiece (TinyLlama, InkubaLM, Gemma), so that
llama.cpp's converter can export the miniature, byte-level BPE where the real one is (Llama-3,
LFM2). The tokenizer learns from a bounded sample of the text. Only sizes shrink. It is written
to a normal Hugging Face folder, so it loads through exactly the code path a hub model takes
(4-bit quantisation included). Folders are cached by a hash of everything that shapes them.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from recipes.errors import RecipeError
from recipes.models import CHAT_TEMPLATES, ModelInfo, model_info
from recipes.schema import Recipe
from recipes.spm import GEMMA, LLAMA, bounded_sample, train_sentencepiece, wrap_sentencepiece

# Miniature sizes: multiples of 64 so bitsandbytes' 4-bit blocks tile every weight.
TINY = {"hidden_size": 128, "intermediate_size": 256, "num_layers": 2, "num_heads": 4,
        "num_kv_heads": 2, "vocab_size": 2048}
TINY_INIT_RANGE = 0.1
TINY_VERSION = 3  # bump when the miniature's construction changes


def tiny_info(recipe: Recipe) -> ModelInfo:
    info = model_info(recipe.model)
    if info is None:
        from recipes.models import KNOWN_MODELS

        raise RecipeError(
            f"tiny mode does not know the architecture of '{recipe.model}'",
            where="model",
            fix="tiny mode works for: " + ", ".join(KNOWN_MODELS),
        )
    return info


def _special_tokens(info: ModelInfo) -> list[str]:
    tokens = [info.bos_token, info.eos_token, info.pad_token, info.unk_token,
              *info.extra_special_tokens]
    seen: list[str] = []
    for tok in tokens:
        if tok and tok not in seen:
            seen.append(tok)
    return seen


def train_tokenizer(info: ModelInfo, texts: list[str], vocab_size: int, folder: Path) -> Any:
    """A tokenizer of the real model's kind trained on ``texts`` (a bounded sample of them),
    with its special tokens: SentencePiece BPE where the real model uses SentencePiece (its
    ``tokenizer.model`` is written to ``folder``), byte-level BPE otherwise."""
    texts = bounded_sample(texts)
    if info.tokenizer_kind == "sentencepiece":
        return _sentencepiece_tokenizer(info, texts, vocab_size, folder)
    return _byte_level_tokenizer(info, texts, vocab_size)


def _sentencepiece_tokenizer(info: ModelInfo, texts: list[str], vocab_size: int,
                             folder: Path) -> Any:
    layout = GEMMA if info.model_type.startswith("gemma") else LLAMA
    named = {"unk": info.unk_token or "<unk>", "bos": info.bos_token, "pad": info.pad_token,
             # Gemma's SentencePiece EOS is <eos>; its chat turns end with <end_of_turn>.
             "eos": "<eos>" if layout is GEMMA else info.eos_token}
    pieces = {role: named[role] for role in layout.ids}
    # Gemma keeps <mask> right after its control tokens (id 4), and its tokenizer class has one.
    special = {"mask_token": "<mask>"} if layout is GEMMA else {}
    user_defined = [t for t in [*special.values(), *_special_tokens(info)]
                    if t not in pieces.values()]
    model_file = train_sentencepiece(texts, folder, layout, vocab_size=vocab_size, pieces=pieces,
                                     user_defined=user_defined, exact_vocab_size=False,
                                     where="tiny mode's tokenizer")
    return wrap_sentencepiece(
        model_file, layout, bos_token=info.bos_token, eos_token=info.eos_token,
        unk_token=info.unk_token or "<unk>", pad_token=info.pad_token,
        extra_special_tokens=info.extra_special_tokens,
        chat_template=CHAT_TEMPLATES[info.chat_format] if info.chat_format else None,
        **special)


def _byte_level_tokenizer(info: ModelInfo, texts: list[str], vocab_size: int) -> Any:
    """Byte-level BPE, as Llama-3 and LFM2 use (llama.cpp's converter cannot read it: it
    recognises a BPE tokenizer only by its pre-tokenizer's output on real models' vocabularies)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    specials = _special_tokens(info)
    tok = Tokenizer(models.BPE(unk_token=None))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, min_frequency=2, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    if info.model_type == "llama":
        # Llama tokenizers put BOS in front of every encoded text; so does the miniature.
        tok.post_processor = processors.TemplateProcessing(
            single=f"{info.bos_token} $A", pair=f"{info.bos_token} $A {info.bos_token} $B",
            special_tokens=[(info.bos_token, tok.token_to_id(info.bos_token))],
        )
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        bos_token=info.bos_token, eos_token=info.eos_token, pad_token=info.pad_token,
        unk_token=info.unk_token,
        additional_special_tokens=list(info.extra_special_tokens) or None,
        clean_up_tokenization_spaces=False,
    )
    if info.chat_format:  # models without a chat template (InkubaLM) get none
        fast.chat_template = CHAT_TEMPLATES[info.chat_format]
    return fast


def _config(info: ModelInfo, tokenizer: Any, max_positions: int) -> Any:
    from transformers import AutoConfig

    config = AutoConfig.for_model(
        info.model_type,
        hidden_size=TINY["hidden_size"],
        intermediate_size=TINY["intermediate_size"],
        num_hidden_layers=TINY["num_layers"],
        num_attention_heads=TINY["num_heads"],
        num_key_value_heads=TINY["num_kv_heads"],
        vocab_size=len(tokenizer),
        max_position_embeddings=max_positions,
        tie_word_embeddings=info.tied_embeddings,
        # Wider than the usual 0.02: with hidden size 128 the frozen random output head could
        # otherwise only produce near-uniform logits, and LoRA could never lower the loss much.
        initializer_range=TINY_INIT_RANGE,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    if info.model_type == "lfm2":
        # Keep LFM2's mix of short-convolution and attention blocks, and its exact MLP width.
        config.layer_types = ["conv", "full_attention"] * (TINY["num_layers"] // 2)
        config.block_auto_adjust_ff_dim = False
    config.architectures = [info.architecture]
    return config


def tokenizer_corpus(recipe: Recipe, examples: list) -> list[str]:
    """The examples rendered with the real model's template: what the tiny tokenizer learns."""
    import types

    from recipes.data.render import Renderer

    info = tiny_info(recipe)
    stand_in = types.SimpleNamespace(
        eos_token=info.eos_token, bos_token=info.bos_token, pad_token=info.pad_token,
        unk_token=info.unk_token, chat_template=CHAT_TEMPLATES.get(info.chat_format, ""))
    renderer = Renderer(stand_in, recipe)
    return [renderer.render(e)[0] for e in examples]


def build_tiny_model(recipe: Recipe, texts: list[str], cache_root: Path) -> Path:
    """Folder holding the miniature (config, safetensors weights, tokenizer); cached."""
    info = tiny_info(recipe)
    max_positions = max(64, recipe.max_seq_length)
    texts = bounded_sample(texts)
    key = hashlib.sha256(
        json.dumps([TINY_VERSION, TINY, TINY_INIT_RANGE, info.model_type, info.chat_format,
                    info.tokenizer_kind, _special_tokens(info), recipe.seed, max_positions,
                    texts], ensure_ascii=False).encode()
    ).hexdigest()[:16]
    folder = cache_root / f"tiny-{info.model_type}-{key}"
    if (folder / "model.safetensors").exists():
        return folder
    import shutil

    import torch
    from transformers import AutoModelForCausalLM

    partial = folder.with_name(folder.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # what an interrupted build left
    partial.mkdir(parents=True)
    tokenizer = train_tokenizer(info, texts, TINY["vocab_size"], partial)
    config = _config(info, tokenizer, max_positions)
    torch.manual_seed(recipe.seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    if not folder.exists():
        partial.replace(folder)
    else:  # built meanwhile by another process: keep that one
        shutil.rmtree(partial, ignore_errors=True)
    return folder
