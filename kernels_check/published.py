"""The estimator against published peak-memory figures (docs/fit.md holds the table).

    slothlab check --published          # print the comparison
    python -m kernels_check --published --json

Each row states the settings the figure was measured at (or, where the source does not say,
the settings assumed) and which parts of the estimate the figure counts: torchtune's
"Peak Memory Active" is allocated tensor bytes only; Unsloth's figures are what a card needs,
CUDA context included. The architectures of models outside slothlab's model table are written
here from their Hugging Face config.json files.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from kernels_check.fit import (
    GIB,
    Arch,
    Workload,
    arch_from_model_info,
    breakdown,
    total_bytes,
)
from recipes.models import model_info

ALL7 = frozenset({"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"})

LLAMA_31_8B = arch_from_model_info(model_info("meta-llama/Llama-3.1-8B-Instruct"))
# config.json numbers of models used only for these comparisons (not in the model table:
# tiny mode would need their tokenizers' details)
MISTRAL_7B = Arch("mistral", 4096, 14336, 32, 32, 8, 128, 32768, False,
                  source="mistralai/Mistral-7B-v0.3 config.json")
QWEN25_7B = Arch("qwen2", 3584, 18944, 28, 28, 4, 128, 152064, False, qkv_bias=True,
                 source="Qwen/Qwen2.5-7B config.json")
QWEN25_14B = Arch("qwen2", 5120, 13824, 48, 40, 8, 128, 152064, False, qkv_bias=True,
                  source="Qwen/Qwen2.5-14B config.json")


@dataclass(frozen=True)
class Comparison:
    name: str
    source: str
    published_gib: float
    predicted_gib: float
    settings: str
    counts: str  # which parts of the estimate the published figure includes
    note: str = ""
    # the estimate with an untied input embedding in CPU RAM (Unsloth 2026.10 does this on
    # its own when the card is tight); None where it does not apply
    offloaded_gib: float | None = None

    @property
    def diff_percent(self) -> float:
        return 100.0 * (self.predicted_gib - self.published_gib) / self.published_gib

    @property
    def offloaded_diff_percent(self) -> float | None:
        if self.offloaded_gib is None:
            return None
        return 100.0 * (self.offloaded_gib - self.published_gib) / self.published_gib


def _tensors_only(arch: Arch, w: Workload) -> float:
    parts = breakdown(arch, w)
    return (sum(parts.values()) - parts["cuda_context"] - parts["allocator_overhead"]) / GIB


def _unsloth(arch: Arch, batch: int, seq: int, r: int, *, tight: bool = False) -> Workload:
    return Workload(batch=batch, seq=seq, lora_r=r, targets=ALL7, checkpointing="offload",
                    profile="fused", act_bytes=2, weight16_bytes=2, optimizer="adamw_8bit",
                    inputs_require_grad=True, attention_mask=batch > 1,
                    offload_embedding=tight and not arch.tied)


def comparisons() -> list[Comparison]:
    llama3b = arch_from_model_info(model_info("meta-llama/Llama-3.2-3B-Instruct"))
    rows: list[Comparison] = []

    # torchtune README, "Optimization flags" table, QLoRA row, reproduced with
    # recipes/configs/llama3_2/3B_qlora_single_device.yaml + the README's command line.
    torchtune = Workload(
        batch=2, seq=4096, lora_r=64,
        targets=frozenset({"q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}),
        checkpointing="offload",  # activation checkpointing + activation offloading
        profile="eager", act_bytes=2, weight16_bytes=2, lora_bytes=2,  # bf16 model and LoRA
        optimizer="adamw_torch",  # torch.optim.AdamW: two bf16 moments per LoRA parameter
        logits="chunked", inputs_require_grad=False, attention_mask=False)
    rows.append(Comparison(
        "Llama-3.2-3B QLoRA (torchtune)", "torchtune README, Optimization flags table",
        4.6, _tensors_only(llama3b, torchtune),
        "batch 2 x 4096 packed, r=64 alpha=128 on q,v,o + MLP, bf16, AC + activation "
        "offloading, fp32 AdamW (torch), chunked CE, compile; A100",
        "peak active tensor bytes (no CUDA context, no allocator slack)",
        "modelled with torchtune's bf16 LoRA weights and AdamW moments"))

    # Unsloth documentation, QLoRA 4-bit minimum VRAM table. It does not give the settings;
    # assumed: Unsloth's notebook defaults r=16 on the 7 projections, batch 2, adamw_8bit,
    # offloaded checkpointing, short examples (512 tokens), and a card tight enough that
    # Unsloth moves an untied input embedding to CPU RAM. "GB" is read as GiB: Unsloth's
    # notebooks print torch's byte counts / 1024**3 labelled GB, and its cards ("8 GB") are
    # GiB-sized.
    for label, arch, published, note in (
        ("Llama-3.2-3B", llama3b, 3.5, ""),
        ("Mistral-7B (7B row)", MISTRAL_7B, 5.0, "the table does not name its 7B model"),
        ("Qwen2.5-7B (7B row)", QWEN25_7B, 5.0,
         "Qwen2.5's 152k vocabulary alone costs 2.0 GiB of bf16 embeddings and head"),
        ("Llama-3.1-8B", LLAMA_31_8B, 6.0, ""),
        ("Qwen2.5-14B (14B row)", QWEN25_14B, 8.5,
         "the table does not name its 14B model; Qwen2.5-14B's bf16 embeddings and head "
         "alone are 2.9 GiB"),
    ):
        w = _unsloth(arch, 2, 512, 16)
        rows.append(Comparison(
            f"{label} QLoRA minimum (Unsloth)", "Unsloth docs, VRAM requirements",
            published, total_bytes(arch, w) / GIB,
            "assumed: r=16 on all 7 projections, batch 2 x 512 tokens, adamw_8bit, "
            "offloaded checkpointing", "whole card, CUDA context included", note,
            None if arch.tied else total_bytes(arch, replace(w, offload_embedding=True)) / GIB))

    # Unsloth's long-context table: Llama-3.1-8B, QLoRA r=32, batch 1, the longest context
    # that trains on an 8 GB and a 12 GB card. At that context the peak should equal the card.
    for card_gb, tokens in ((8, 2972), (12, 21848)):
        w = _unsloth(LLAMA_31_8B, 1, tokens, 32)
        usable = _card_gib(card_gb)
        rows.append(Comparison(
            f"Llama-3.1-8B r=32 at {tokens:,} tokens on {card_gb} GB (Unsloth)",
            "Unsloth docs, context length table", usable, total_bytes(LLAMA_31_8B, w) / GIB,
            f"batch 1 x {tokens} tokens, r=32, offloaded checkpointing",
            f"whole card ({usable:g} GiB), CUDA context included",
            "the figure is the card, so at the published limit the estimate should reach it; "
            "measured in 2024, before Unsloth offloaded embeddings"))
    return rows


def _card_gib(card_gb: int) -> float:
    """Consumer cards sold as "8 GB" / "12 GB" carry 8 / 12 GiB of memory."""
    return float(card_gb)


def max_context(arch: Arch, card_gib: float, r: int = 32) -> int:
    """Longest batch-1 context that fits a card under the Unsloth workload."""
    lo, hi = 16, 262144
    w = _unsloth(arch, 1, lo, r)
    if total_bytes(arch, w) > card_gib * GIB:
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if total_bytes(arch, replace(w, seq=mid)) <= card_gib * GIB:
            lo = mid
        else:
            hi = mid - 1
    return lo


def context_rows() -> list[tuple[str, int, int, float]]:
    """(card, published max context, predicted max context, % difference)."""
    rows = []
    for card_gb, tokens in ((8, 2972), (12, 21848)):
        predicted = max_context(LLAMA_31_8B, _card_gib(card_gb))
        rows.append((f"{card_gb} GB", tokens, predicted, 100.0 * (predicted - tokens) / tokens))
    return rows


def format_markdown() -> str:
    lines = ["| figure | published | slothlab | diff | embeddings in CPU RAM | settings | "
             "what it counts |", "|---|---:|---:|---:|---:|---|---|"]
    for c in comparisons():
        note = f" ({c.note})" if c.note else ""
        alt = "" if c.offloaded_gib is None else (
            f"{c.offloaded_gib:.2f} GiB ({c.offloaded_diff_percent:+.0f} %)")
        lines.append(f"| {c.name} | {c.published_gib:.2f} GiB | {c.predicted_gib:.2f} GiB | "
                     f"{c.diff_percent:+.0f} % | {alt} | {c.settings} | {c.counts}{note} |")
    lines += ["", "| Llama-3.1-8B r=32, batch 1 | published max context | slothlab | diff |",
              "|---|---:|---:|---:|"]
    for card, published, predicted, diff in context_rows():
        lines.append(f"| {card} card | {published:,} | {predicted:,} | {diff:+.0f} % |")
    return "\n".join(lines)


def within(percent: float) -> list[Comparison]:
    """Rows whose estimate is within ``percent`` of the published figure."""
    return [c for c in comparisons() if math.fabs(c.diff_percent) <= percent]
