"""Models slothlab knows offline: architecture numbers, chat format and special tokens.

Tiny mode builds its miniature from these entries, and the VRAM estimator reads their sizes,
so both work with no hub access. Numbers are from each model's config.json
(see ../shared/REFERENCE.md). A model not listed still trains from the hub; it just cannot be
miniaturised without its config.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

# Chat templates written for slothlab; each renders exactly what the model's own template
# renders for system/user/assistant turns (checked against the real tokenizers in the tests).
ZEPHYR = (
    "{% for message in messages %}"
    "{{ '<|' + message['role'] + '|>\\n' + message['content'] + eos_token + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|assistant|>\\n' }}{% endif %}"
)
LLAMA3 = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' "
    "+ message['content'] | trim + '<|eot_id|>' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}"
    "{{ '<|start_header_id|>assistant<|end_header_id|>\\n\\n' }}"
    "{% endif %}"
)
CHATML = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
GEMMA = (
    "{{ bos_token }}"
    "{% for message in messages %}"
    "{% set role = 'model' if message['role'] == 'assistant' else message['role'] %}"
    "{{ '<start_of_turn>' + role + '\\n' + message['content'] | trim + '<end_of_turn>\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<start_of_turn>model\\n' }}{% endif %}"
)
CHAT_TEMPLATES: dict[str, str] = {"zephyr": ZEPHYR, "llama-3.1": LLAMA3, "chatml": CHATML,
                                  "gemma": GEMMA}


@dataclass(frozen=True)
class ModelInfo:
    model_type: str  # transformers config model_type
    architecture: str  # class name
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    vocab_size: int
    tied_embeddings: bool
    chat_format: str  # key of CHAT_TEMPLATES, or "" for models without a chat template
    bos_token: str
    eos_token: str  # the end-of-turn token generation stops at
    pad_token: str
    unk_token: str | None = None
    # Tokens the real tokenizer treats as special (never split), beyond bos/eos/pad/unk.
    extra_special_tokens: tuple[str, ...] = ()
    linear_modules: tuple[str, ...] = field(
        default=("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
    )
    head_dim: int | None = None  # None = hidden_size // num_heads
    # LFM2: how many of num_layers are short-convolution blocks (the rest are attention).
    num_conv_layers: int = 0
    params: int = 0  # published parameter count, for sanity checks
    verified: bool = True  # False where the numbers come from secondary sources
    # "sentencepiece" (a tokenizer.model: Llama-2 / TinyLlama, Gemma) or "bpe" (byte-level BPE:
    # Llama-3, LFM2). Tiny mode trains the same kind; llama.cpp's converter needs to know it.
    tokenizer_kind: str = "bpe"

    @property
    def head_size(self) -> int:
        return self.head_dim or self.hidden_size // self.num_heads


KNOWN_MODELS: dict[str, ModelInfo] = {
    "TinyLlama/TinyLlama-1.1B-Chat-v1.0": ModelInfo(
        model_type="llama", architecture="LlamaForCausalLM", hidden_size=2048,
        intermediate_size=5632, num_layers=22, num_heads=32, num_kv_heads=4, vocab_size=32000,
        tied_embeddings=False, chat_format="zephyr", bos_token="<s>", eos_token="</s>",
        pad_token="</s>", unk_token="<unk>", params=1_100_048_384,
        tokenizer_kind="sentencepiece",
    ),
    "meta-llama/Llama-3.2-3B-Instruct": ModelInfo(
        model_type="llama", architecture="LlamaForCausalLM", hidden_size=3072,
        intermediate_size=8192, num_layers=28, num_heads=24, num_kv_heads=8, vocab_size=128256,
        tied_embeddings=True, chat_format="llama-3.1", bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>", pad_token="<|finetune_right_pad_id|>",
        extra_special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"),
        params=3_212_749_824,
    ),
    "meta-llama/Llama-3.1-8B-Instruct": ModelInfo(
        model_type="llama", architecture="LlamaForCausalLM", hidden_size=4096,
        intermediate_size=14336, num_layers=32, num_heads=32, num_kv_heads=8, vocab_size=128256,
        tied_embeddings=False, chat_format="llama-3.1", bos_token="<|begin_of_text|>",
        eos_token="<|eot_id|>", pad_token="<|finetune_right_pad_id|>",
        extra_special_tokens=("<|start_header_id|>", "<|end_header_id|>", "<|end_of_text|>"),
        params=8_030_261_248,
    ),
    "LiquidAI/LFM2-1.2B": ModelInfo(
        model_type="lfm2", architecture="Lfm2ForCausalLM", hidden_size=2048,
        intermediate_size=8192, num_layers=16, num_heads=32, num_kv_heads=8, vocab_size=65536,
        tied_embeddings=True, chat_format="chatml", bos_token="<|startoftext|>",
        eos_token="<|im_end|>", pad_token="<|pad|>",
        extra_special_tokens=("<|endoftext|>", "<|im_start|>"),
        linear_modules=("q_proj", "k_proj", "v_proj", "out_proj", "in_proj", "w1", "w2", "w3"),
        num_conv_layers=10, params=1_170_340_608,
    ),
    "google/gemma-3-270m": ModelInfo(
        model_type="gemma3_text", architecture="Gemma3ForCausalLM", hidden_size=640,
        intermediate_size=2048, num_layers=18, num_heads=4, num_kv_heads=1, vocab_size=262144,
        tied_embeddings=True, chat_format="gemma", bos_token="<bos>", eos_token="<end_of_turn>",
        pad_token="<pad>", unk_token="<unk>", extra_special_tokens=("<start_of_turn>", "<eos>"),
        head_dim=256, params=268_098_176, tokenizer_kind="sentencepiece",
    ),
    "lelapa/InkubaLM-0.4B": ModelInfo(
        model_type="llama", architecture="LlamaForCausalLM", hidden_size=2048,
        intermediate_size=5632, num_layers=8, num_heads=32, num_kv_heads=32, vocab_size=61788,
        tied_embeddings=False, chat_format="", bos_token="<s>", eos_token="</s>",
        pad_token="</s>", unk_token="<unk>", params=421_939_200, verified=False,
        tokenizer_kind="sentencepiece",
    ),
}
# Unsloth's pre-quantised repos hold the same architecture as their source model.
ALIASES: dict[str, str] = {
    "unsloth/tinyllama-chat-bnb-4bit": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "unsloth/tinyllama-chat": "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
    "unsloth/Llama-3.2-3B-Instruct-bnb-4bit": "meta-llama/Llama-3.2-3B-Instruct",
    "unsloth/Llama-3.2-3B-Instruct": "meta-llama/Llama-3.2-3B-Instruct",
    "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit": "meta-llama/Llama-3.1-8B-Instruct",
    "unsloth/Llama-3.1-8B-Instruct-bnb-4bit": "meta-llama/Llama-3.1-8B-Instruct",
    "unsloth/Llama-3.1-8B-Instruct": "meta-llama/Llama-3.1-8B-Instruct",
    "unsloth/LFM2-1.2B-unsloth-bnb-4bit": "LiquidAI/LFM2-1.2B",
    "unsloth/LFM2-1.2B": "LiquidAI/LFM2-1.2B",
    "unsloth/gemma-3-270m-it": "google/gemma-3-270m",
    "google/gemma-3-270m-it": "google/gemma-3-270m",
}


def model_info(model_id: str) -> ModelInfo | None:
    return KNOWN_MODELS.get(ALIASES.get(model_id, model_id))


# Layers peft can adapt in every model above besides its linear ones (the embedding, the head).
ALWAYS_ADAPTABLE = ("embed_tokens", "lm_head")


def linear_modules_of(model_id: str) -> tuple[str, ...] | None:
    """The linear layer names LoRA can target in ``model_id``: from the table above, or from a
    local folder's config.json whose ``model_type`` the table knows; None when not known."""
    info = model_info(model_id)
    if info is not None:
        return info.linear_modules
    config = Path(model_id).expanduser() / "config.json"
    try:
        model_type = json.loads(config.read_text(encoding="utf-8")).get("model_type")
    except (OSError, ValueError, AttributeError):
        return None
    return next((m.linear_modules for m in KNOWN_MODELS.values() if m.model_type == model_type),
                None)


def unknown_target_modules(model_id: str, target_modules: list[str]) -> list[str]:
    """The names in ``target_modules`` that match no layer of ``model_id`` (peft matches a name
    or a dotted path's last part: "self_attn.q_proj"). Empty when every name matches, for
    "all-linear", and for a model this table does not know (it is not refused)."""
    known = linear_modules_of(model_id)
    if known is None:
        return []
    allowed = {*known, *ALWAYS_ADAPTABLE, "all-linear"}
    return [name for name in target_modules if name.rsplit(".", 1)[-1] not in allowed]
