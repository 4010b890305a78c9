"""Fit: how much GPU memory a recipe needs, whether it fits a card, and what would.

    from kernels_check.fit import estimate
    report = estimate(recipe, vram_gib=6)        # FitReport: total, components, verdict, advice
    report.verdict, report.total_gib, report.max_seq_length

    slothlab check --recipe demo --vram 6        # the same, as a table
    slothlab check --recipe my.yaml --set batch_size=4 --json

The estimate is arithmetic on the architecture (from the model table in ``recipes.models``, a
local ``config.json``, or the tiny-mode miniature), so it works offline and never imports torch:
the TUI imports this module for its fit badges. Peak memory is modelled as

    4-bit weights (packed NF4 + double-quantised constants) + 16-bit parts left unquantised
    + LoRA parameters + their gradients + optimizer state
    + activations at the peak (saved for backward, per checkpointing mode) + backward workspace
    + logits + CUDA context + allocator overhead.

Bytes saved for backward are counted op by op (which tensors each autograd node keeps), the
way ``torch.autograd.graph.saved_tensors_hooks`` sees them; tests/test_fit.py checks the weight,
LoRA, optimizer and saved-activation components against a really quantised model on a CPU, and
docs/fit.md compares totals with published peak figures.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the recipe type only; importing recipes.schema costs nothing heavy anyway
    from recipes.schema import Recipe

GIB = 2**30
TIGHT_MARGIN = 0.10  # within 10 % of the card = "tight"

# bitsandbytes NF4 with double quantisation: blocks of 64 weights share one absmax, stored as
# uint8 and re-quantised in groups of 256 blocks with one fp32 absmax each; every tensor also
# carries its 16-entry NF4 code (fp32), the nested 256-entry code (fp32) and an fp32 offset.
NF4_BLOCK = 64
NESTED_BLOCK = 256
NF4_FIXED_BYTES = 16 * 4 + 256 * 4 + 4
NF4_FIXED_BYTES_SINGLE = 16 * 4  # without double quantisation: the code only

# bitsandbytes 8-bit optimizers keep 32-bit state for tensors under min_8bit_size elements.
BNB_MIN_8BIT_SIZE = 4096
BNB_STATE_BLOCK = 256
BNB_QMAPS_BYTES = 2 * 256 * 4  # the shared signed/unsigned dynamic maps

# Not tensors: the CUDA context with cuBLAS workspace and loaded kernels (seen by nvidia-smi,
# not by torch.cuda.memory_allocated), and the caching allocator's rounding and fragmentation.
CUDA_CONTEXT_BYTES = int(0.45 * GIB)
ALLOCATOR_OVERHEAD = 0.05

# Chunked cross-entropy (Unsloth's fused loss, TRL's fused LM head) never holds the full
# logits: it works through the tokens in chunks. Unsloth sizes the chunks to half the free
# memory, so a fuller card just gets smaller chunks; a fit needs about this much for one.
LOGITS_CHUNK_BYTES = 256 * 2**20
CE_BYTES_PER_LOGIT = 16  # logits (bf16) + fp32 upcast + saved log-softmax + gradient

MAX_SEARCH_SEQ = 131072
MAX_SEARCH_BATCH = 4096


# -- architecture ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Arch:
    """The numbers the estimate needs, from the model table, a config.json, or tiny mode."""

    model_type: str
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    conv_layers: int = 0  # LFM2: short-convolution blocks among `layers`
    conv_kernel: int = 3
    qkv_bias: bool = False  # Qwen2
    gemma_norms: bool = False  # Gemma 3: four norms a layer, (1 + w) scaling, q/k norms
    qk_norm: bool = False  # per-head RMSNorm on q and k (Gemma 3, LFM2)
    rope_sets: int = 1  # distinct cos/sin tables (Gemma 3: local and global)
    sliding_window: int | None = None
    source: str = "table"

    @property
    def q_dim(self) -> int:
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def attn_layers(self) -> int:
        return self.layers - self.conv_layers

    @property
    def norms_per_layer(self) -> int:
        return 4 if self.gemma_norms else 2

    def linears(self) -> list[Linear]:
        """Every linear layer LoRA can target, with its shape and how many layers have it."""
        h, i = self.hidden, self.intermediate
        if self.model_type == "lfm2":
            return [
                Linear("q_proj", h, self.q_dim, self.attn_layers, "attn_in"),
                Linear("k_proj", h, self.kv_dim, self.attn_layers, "attn_in"),
                Linear("v_proj", h, self.kv_dim, self.attn_layers, "attn_in"),
                Linear("out_proj", self.q_dim, h, self.attn_layers, "attn_out"),
                Linear("in_proj", h, 3 * h, self.conv_layers, "conv_in"),
                Linear("out_proj", h, h, self.conv_layers, "conv_out"),
                Linear("w1", h, i, self.layers, "mlp_in"),
                Linear("w3", h, i, self.layers, "mlp_in"),
                Linear("w2", i, h, self.layers, "mlp_down"),
            ]
        return [
            Linear("q_proj", h, self.q_dim, self.layers, "attn_in"),
            Linear("k_proj", h, self.kv_dim, self.layers, "attn_in"),
            Linear("v_proj", h, self.kv_dim, self.layers, "attn_in"),
            Linear("o_proj", self.q_dim, h, self.layers, "attn_out"),
            Linear("gate_proj", h, i, self.layers, "mlp_in"),
            Linear("up_proj", h, i, self.layers, "mlp_in"),
            Linear("down_proj", i, h, self.layers, "mlp_down"),
        ]

    def params(self) -> int:
        """Parameter count (for sanity checks against published sizes)."""
        linear = sum(lin.fan_in * lin.fan_out * lin.count for lin in self.linears())
        return linear + self.unquantised_params()

    def unquantised_params(self) -> int:
        """Embeddings, output head (when untied), norms, conv filters, biases."""
        n = self.vocab * self.hidden * (1 if self.tied else 2)
        n += (self.layers * self.norms_per_layer + 1) * self.hidden
        if self.qk_norm:
            n += 2 * self.attn_layers * self.head_dim
        n += self.conv_layers * self.hidden * self.conv_kernel
        if self.qkv_bias:
            n += self.layers * (self.q_dim + 2 * self.kv_dim)
        return n


@dataclass(frozen=True)
class Linear:
    name: str
    fan_in: int
    fan_out: int
    count: int  # layers that have it
    input_group: str  # linears reading the same tensor share one saved copy of it


def arch_from_model_info(info: Any, source: str = "table") -> Arch:
    """An Arch from a ``recipes.models.ModelInfo`` row."""
    gemma = info.model_type.startswith("gemma3")
    lfm2 = info.model_type == "lfm2"
    return Arch(
        model_type=info.model_type, hidden=info.hidden_size, intermediate=info.intermediate_size,
        layers=info.num_layers, heads=info.num_heads, kv_heads=info.num_kv_heads,
        head_dim=info.head_size, vocab=info.vocab_size, tied=info.tied_embeddings,
        conv_layers=getattr(info, "num_conv_layers", 0), qkv_bias=info.model_type == "qwen2",
        gemma_norms=gemma, qk_norm=gemma or lfm2, rope_sets=2 if gemma else 1,
        sliding_window=512 if gemma else None, source=source,
    )


def arch_from_config(config: dict[str, Any], source: str = "config.json") -> Arch:
    """An Arch from a Hugging Face config.json mapping (text models; multimodal -> text_config)."""
    if "text_config" in config and "hidden_size" not in config:
        config = {**config["text_config"], "model_type": config["text_config"].get(
            "model_type", config.get("model_type", ""))}
    model_type = str(config.get("model_type", ""))
    hidden = int(config["hidden_size"])
    heads = int(config["num_attention_heads"])
    layers = int(config["num_hidden_layers"])
    inter = int(config.get("intermediate_size") or config.get("block_ff_dim") or 4 * hidden)
    conv_layers = 0
    if model_type == "lfm2":
        if config.get("block_auto_adjust_ff_dim", True):
            inter = int(2 * inter / 3)
            mult = config.get("block_ffn_dim_multiplier", 1.0)
            if mult is not None:
                inter = int(mult * inter)
                m = int(config.get("block_multiple_of", 256))
                inter = m * ((inter + m - 1) // m)
        types = config.get("layer_types")
        if types:
            conv_layers = sum(1 for t in types if t == "conv")
        elif config.get("full_attn_idxs") is not None:
            conv_layers = layers - len(config["full_attn_idxs"])
    gemma = model_type.startswith("gemma3")
    types = config.get("layer_types") or []
    return Arch(
        model_type=model_type, hidden=hidden, intermediate=inter, layers=layers, heads=heads,
        kv_heads=int(config.get("num_key_value_heads") or heads),
        head_dim=int(config.get("head_dim") or hidden // heads),
        vocab=int(config["vocab_size"]),
        tied=bool(config.get("tie_word_embeddings", config.get("tie_embedding", True))),
        conv_layers=conv_layers, conv_kernel=int(config.get("conv_L_cache", 3)),
        qkv_bias=model_type == "qwen2" or bool(config.get("attention_bias", False)),
        gemma_norms=gemma, qk_norm=gemma or model_type in ("lfm2", "qwen3"),
        rope_sets=2 if gemma and len(set(types)) != 1 else 1,
        sliding_window=config.get("sliding_window") if gemma else None, source=source,
    )


def resolve_arch(recipe: Recipe) -> tuple[Arch | None, str]:
    """(Arch, where it came from) or (None, why not): tiny mode, a local config.json, the table."""
    from recipes.models import model_info

    if recipe.tiny:
        info = model_info(recipe.model)
        if info is None:
            return None, f"tiny mode does not know the architecture of '{recipe.model}'"
        from recipes.tiny import TINY

        # as recipes.tiny builds the miniature: LFM2 alternates conv and attention blocks, Gemma 3
        # keeps its config's default 256-wide heads
        base = arch_from_model_info(info, "tiny")
        return replace(
            base, hidden=TINY["hidden_size"], intermediate=TINY["intermediate_size"],
            layers=TINY["num_layers"], heads=TINY["num_heads"], kv_heads=TINY["num_kv_heads"],
            vocab=TINY["vocab_size"],
            conv_layers=TINY["num_layers"] // 2 if base.model_type == "lfm2" else 0,
            head_dim=256 if base.gemma_norms else TINY["hidden_size"] // TINY["num_heads"],
        ), "tiny-mode miniature"
    config_path = Path(recipe.model).expanduser() / "config.json"
    if config_path.is_file():
        try:
            config = json.loads(config_path.read_text(encoding="utf-8"))
            return arch_from_config(config, f"{config_path}"), str(config_path)
        except (OSError, ValueError, KeyError, TypeError) as exc:
            return None, f"cannot read {config_path}: {type(exc).__name__}: {exc}"
    info = model_info(recipe.model)
    if info is not None:
        return arch_from_model_info(info), "model table (recipes/models.py)"
    return None, (f"'{recipe.model}' is not in the model table and is not a local folder with a "
                  "config.json, so its size is unknown offline")


# -- workload ----------------------------------------------------------------------------------

CHECKPOINTING = ("none", "standard", "offload")
PROFILES = ("eager", "amp", "fused")


@dataclass(frozen=True)
class Workload:
    """How the model is trained: what drives activation, LoRA and optimizer memory.

    profile: "fused"  Unsloth's fast path (fused LoRA_QKV / LoRA_W / LoRA_MLP, Triton RMSNorm
                      and in-place RoPE; Llama-family models),
             "amp"    transformers + peft under bf16/fp16 autocast, with the unquantised
                      parameters upcast to fp32 by prepare_model_for_kbit_training (the
                      reference backend on a GPU),
             "eager"  plain modules in one dtype (`act_bytes`): the reference backend on a CPU
                      (fp32), and Unsloth's generic path for non-Llama models (bf16).
    """

    batch: int
    seq: int
    lora_r: int
    targets: frozenset[str] | None  # None = every linear layer
    lora_dropout: float = 0.0
    checkpointing: str = "offload"
    profile: str = "fused"
    act_bytes: int = 2  # bytes per activation element in the compute dtype
    weight16_bytes: int = 2  # bytes per unquantised parameter (embeddings, norms, head)
    lora_bytes: int = 4  # LoRA weights (and their gradients) are kept in fp32
    optimizer: str = "adamw_8bit"
    load_in_4bit: bool = True
    double_quant: bool = True
    logits: str = "chunked"  # "chunked" | "full" (the model's own loss: whole logits)
    inputs_require_grad: bool = False  # embeddings' output requires grad (Unsloth: yes)
    attention_mask: bool = False  # a padding mask is materialised (batches > 1 are padded)
    on_gpu: bool = True  # count the CUDA context and allocator overhead
    # Unsloth moves an untied input embedding to CPU RAM when the card is tight
    # (FastLanguageModel.from_pretrained(offload_embedding="auto"))
    offload_embedding: bool = False

    @property
    def tokens(self) -> int:
        return self.batch * self.seq


def targeted(lin: Linear, w: Workload) -> bool:
    return w.targets is None or lin.name in w.targets


# -- components --------------------------------------------------------------------------------


def nf4_bytes(n: int, double_quant: bool = True) -> int:
    """Bytes of one bitsandbytes NF4 weight of n elements, with its quantisation constants."""
    blocks = math.ceil(n / NF4_BLOCK)
    if double_quant:
        return (n + 1) // 2 + blocks + 4 * math.ceil(blocks / NESTED_BLOCK) + NF4_FIXED_BYTES
    return (n + 1) // 2 + 4 * blocks + NF4_FIXED_BYTES_SINGLE


def weight_bytes(arch: Arch, w: Workload) -> tuple[int, int]:
    """(4-bit linear weights with constants, unquantised 16-bit parts) in bytes."""
    four = 0
    sixteen = arch.unquantised_params() * w.weight16_bytes
    if w.offload_embedding and not arch.tied:
        sixteen -= arch.vocab * arch.hidden * w.weight16_bytes
    for lin in arch.linears():
        n = lin.fan_in * lin.fan_out
        if w.load_in_4bit:
            four += nf4_bytes(n, w.double_quant) * lin.count
        else:
            sixteen += n * lin.count * w.weight16_bytes
    return four, sixteen


def lora_shapes(arch: Arch, w: Workload) -> list[tuple[int, int]]:
    """(numel, count) of every LoRA A and B matrix."""
    shapes = []
    for lin in arch.linears():
        if targeted(lin, w) and lin.count:
            shapes.append((w.lora_r * lin.fan_in, lin.count))
            shapes.append((w.lora_r * lin.fan_out, lin.count))
    return shapes


def lora_param_count(arch: Arch, w: Workload) -> int:
    return sum(n * c for n, c in lora_shapes(arch, w))


def optimizer_bytes(arch: Arch, w: Workload) -> int:
    """Optimizer state for the LoRA parameters after the first step."""
    shapes = lora_shapes(arch, w)
    if w.optimizer in ("adamw_8bit", "paged_adamw_8bit"):
        total, any8 = 0, False
        for n, c in shapes:
            if n >= BNB_MIN_8BIT_SIZE:
                any8 = True
                total += c * (2 * n + 2 * 4 * math.ceil(n / BNB_STATE_BLOCK))
            else:
                total += c * 2 * 4 * n
        return total + (BNB_QMAPS_BYTES if any8 else 0)
    if w.optimizer in ("adamw_torch", "adamw_torch_fused"):
        return sum(2 * w.lora_bytes * n * c for n, c in shapes)
    if w.optimizer == "adafactor":  # factored second moment: a row and a column vector
        total = 0
        for lin in arch.linears():
            if targeted(lin, w) and lin.count:
                total += lin.count * 4 * ((w.lora_r + lin.fan_in) + (lin.fan_out + w.lora_r))
        return total
    return 0  # sgd without momentum


@dataclass
class Activations:
    """Bytes of activation memory, split the way checkpointing treats them."""

    per_layer: list[int]  # saved for backward by each decoder layer
    shared: int  # rotary tables and the attention mask, shared by all layers
    tail: int  # final norm (+ whatever the head keeps) outside the layers
    boundary: int  # one layer's input (what a checkpoint keeps)
    workspace: int  # transient gradient buffers while one layer runs backward

    @property
    def saved_total(self) -> int:
        return sum(self.per_layer) + self.shared + self.tail

    def peak(self, checkpointing: str) -> int:
        """Activation memory at the peak of backward for a checkpointing mode."""
        layer = max(self.per_layer) if self.per_layer else 0
        if checkpointing == "none":
            return self.saved_total + self.workspace
        if checkpointing == "standard":
            return (len(self.per_layer) * self.boundary + layer + self.shared + self.tail
                    + self.workspace)
        # offload: layer inputs live in CPU RAM; the GPU holds the one being recomputed and the
        # next one being copied back.
        return 2 * self.boundary + layer + self.shared + self.tail + self.workspace


def activations(arch: Arch, w: Workload) -> Activations:
    if w.profile == "fused" and arch.model_type not in ("llama", "mistral", "qwen2"):
        w = replace(w, profile="eager")  # Unsloth's generic path: plain modules in bf16
    if w.profile == "fused":
        return _activations_fused(arch, w)
    return _activations_eager(arch, w)


def _norm_saved(rows: int, width: int, gemma: bool) -> int:
    """HF RMSNorm with a frozen weight: the fp32 input and the fp32 rsqrt per row."""
    return rows * width * 4 + rows * 4 + (width * 4 if gemma else 0)


def _activations_eager(arch: Arch, w: Workload) -> Activations:
    """transformers + peft modules as autograd sees them ("eager"; "amp" = under autocast)."""
    T, r = w.tokens, w.lora_r
    amp = w.profile == "amp"
    e = w.act_bytes
    res = 4 if amp else e  # amp: fp32 norms and embeddings make the residual stream fp32
    lin_out = 4 if amp else e  # amp: bnb's Linear4bit returns its input's dtype (fp32)
    gemma = arch.gemma_norms
    lins = [lin for lin in arch.linears() if lin.count]

    # dropout keeps a boolean mask on a GPU, a noise tensor in the input's dtype on a CPU
    mask = 1 if w.on_gpu else e

    def lora_saves(group: str, fan_in: int, input_grad: bool) -> tuple[int, bool]:
        """Bytes the LoRA branches reading one input keep, and whether any reads it."""
        names = [lin for lin in lins if lin.input_group == group and targeted(lin, w)]
        if not names:
            return 0, False
        total = len(names) * T * r * e  # each lora_A output, kept by lora_B
        if w.lora_dropout > 0:
            # each adapter has its own dropout: its dropped copy, and the mask when a
            # gradient has to flow back through it
            total += len(names) * T * fan_in * ((4 if amp else e) + (mask if input_grad else 0))
            if amp:
                total += len(names) * T * fan_in * e  # autocast's copy for lora_A
        elif amp:
            total += len(names) * T * fan_in * e  # autocast casts the input once per adapter
        else:
            total += T * fan_in * e  # one shared input
        return total, True

    grad = w.inputs_require_grad
    per_layer: list[int] = []
    for index in range(arch.layers):
        kind = "conv" if index < arch.conv_layers else "attn"
        saved = 0
        if grad:
            saved += _norm_saved(T, arch.hidden, gemma)
        if kind == "attn":
            lora, any_in = lora_saves("attn_in", arch.hidden, grad)
            saved += lora
            if grad or any_in:
                if arch.qk_norm:
                    saved += _norm_saved(T * arch.heads, arch.head_dim, gemma)
                    saved += _norm_saved(T * arch.kv_heads, arch.head_dim, gemma)
                # sdpa keeps q, k, v (after RoPE), its output and the log-sum-exp; under
                # autocast the q/k/v it keeps are its bf16 copies.
                saved += T * (2 * arch.q_dim + 2 * arch.kv_dim) * e + T * arch.heads * 4
            # the output projection reads sdpa's output (same storage): only its LoRA branch
            out_proj = [lin for lin in lins if lin.input_group == "attn_out" and targeted(lin, w)]
            saved += sum(T * r * e for lin in out_proj)
            if w.lora_dropout > 0:
                saved += sum(T * lin.fan_in * (e + mask) for lin in out_proj)
            grad = grad or any_in or bool(out_proj)
            if gemma and grad:
                saved += _norm_saved(T, arch.hidden, gemma)  # post_attention_layernorm
        else:
            lora, any_in = lora_saves("conv_in", arch.hidden, grad)
            saved += lora
            if grad or any_in:
                # in_proj output (B, C, x), the conv input and its (padded) output; the gated
                # result out_proj reads is kept by its LoRA branch
                saved += T * 3 * arch.hidden * lin_out + T * arch.hidden * lin_out
                saved += w.batch * arch.hidden * (w.seq + arch.conv_kernel - 1) * lin_out
                saved += lora_saves("conv_out", arch.hidden, True)[0]
            grad = grad or any_in or any(targeted(lin, w) for lin in lins
                                         if lin.input_group == "conv_out")
        # MLP
        if grad:
            saved += _norm_saved(T, arch.hidden, gemma)
        lora, any_in = lora_saves("mlp_in", arch.hidden, grad)
        saved += lora
        if grad or any_in:
            # the activation's input, its output and the up projection (kept by the product)
            saved += 3 * T * arch.intermediate * lin_out
        down, any_down = lora_saves("mlp_down", arch.intermediate, True)
        if any_down:
            saved += down
        grad = grad or any_in or any_down
        if gemma and grad:
            saved += _norm_saved(T, arch.hidden, gemma)  # post_feedforward_layernorm
        per_layer.append(saved)

    shared = arch.rope_sets * 2 * w.seq * arch.head_dim * res
    if w.attention_mask:
        shared += w.batch * w.seq * w.seq  # one boolean (b, 1, s, s) mask for every layer
    if amp:  # autocast's cached low-precision copies of the (fp32) LoRA weights
        shared += lora_param_count(arch, w) * e
    tail = _norm_saved(T, arch.hidden, gemma) if grad else 0
    boundary = T * arch.hidden * res
    mlp_ws = 3 * T * arch.intermediate * lin_out + arch.hidden * arch.intermediate * e
    attn_ws = T * (arch.q_dim + 2 * arch.kv_dim) * e + T * arch.q_dim * 4
    workspace = max(mlp_ws, attn_ws) + 2 * T * arch.hidden * res
    return Activations(per_layer, shared, tail, boundary, workspace)


def _activations_fused(arch: Arch, w: Workload) -> Activations:
    """Unsloth's Llama fast path, from its autograd Functions' save_for_backward calls.

    Fast_RMS_Layernorm keeps X and the fp32 inverse rms r; LoRA_QKV, LoRA_W keep X; LoRA_MLP
    keeps X, e = X @ gate and g = X @ up (h is recomputed); RoPE rotates Q and K in place and
    keeps nothing; attention keeps Q, K, V, its output (also o_proj's input) and the
    log-sum-exp. Dropout > 0 adds one boolean mask per adapter input.
    """
    T, e = w.tokens, w.act_bytes
    h, i = arch.hidden, arch.intermediate
    norm = T * h * e + T * 4
    per = 2 * norm + T * h * e  # two norms, LoRA_QKV's X
    per += T * (2 * arch.q_dim + 2 * arch.kv_dim) * e + T * arch.heads * 4  # attention
    per += T * h * e + 2 * T * i * e  # LoRA_MLP: X, e, g
    if w.lora_dropout > 0:
        per += T * (5 * h + arch.q_dim + i)  # masks: q, k, v, gate, up (X), o, down
    shared = 2 * w.seq * arch.head_dim * e
    if w.attention_mask:
        shared += w.batch * w.seq * w.seq
    tail = norm
    boundary = T * h * e
    # LoRA_MLP backward: DW = dY @ down (new), the rest in place in e, g and X; plus the
    # dequantised weight buffers Unsloth keeps for the largest projection.
    mlp_ws = T * i * e + 2 * h * i * e
    attn_ws = T * (arch.q_dim + 2 * arch.kv_dim) * e + T * arch.q_dim * 4
    workspace = max(mlp_ws, attn_ws) + 2 * T * h * e
    return Activations([per] * arch.layers, shared, tail, boundary, workspace)


def logits_bytes(arch: Arch, w: Workload) -> tuple[int, int]:
    """(bytes at the peak, bytes saved for backward) of the output head and the loss."""
    T, V = w.tokens, arch.vocab
    # under autocast the fp32 output head is cast to the compute dtype for the matmul, and
    # that copy is what its backward keeps
    head_copy = V * arch.hidden * w.act_bytes if w.profile == "amp" else 0
    if w.logits == "full":
        # the logits, the fp32 log-softmax the loss keeps, and its gradient in backward
        # (labels: a view of the shifted, padded copy when the batch has one row)
        labels = (w.seq + 1) * 8 if w.batch == 1 else T * 8
        saved = T * V * 4 + labels + 4 + head_copy
        return T * V * w.act_bytes + T * V * 4 + T * V * 4 + head_copy, saved
    return (min(T * V * CE_BYTES_PER_LOGIT, LOGITS_CHUNK_BYTES) + T * arch.hidden * 4
            + head_copy, 0)


def breakdown(arch: Arch, w: Workload) -> dict[str, int]:
    """Peak memory in bytes, by component (ordered as shown to the user)."""
    four, sixteen = weight_bytes(arch, w)
    lora = lora_param_count(arch, w) * w.lora_bytes
    acts = activations(arch, w)
    peak_logits, _ = logits_bytes(arch, w)
    act_peak = acts.peak(w.checkpointing)
    parts = {
        "weights_4bit": four,
        "weights_16bit": sixteen,
        "lora_params": lora,
        "lora_grads": lora,
        "optimizer_state": optimizer_bytes(arch, w),
        "activations": act_peak - acts.workspace,
        "backward_workspace": acts.workspace,
        "logits": peak_logits,
    }
    tensors = sum(parts.values())
    parts["cuda_context"] = CUDA_CONTEXT_BYTES if w.on_gpu else 0
    parts["allocator_overhead"] = int(ALLOCATOR_OVERHEAD * tensors) if w.on_gpu else 0
    return parts


COMPONENT_LABELS = {
    "weights_4bit": "4-bit weights (NF4 + quantisation constants)",
    "weights_16bit": "16-bit parts (embeddings, head, norms)",
    "lora_params": "LoRA parameters (fp32)",
    "lora_grads": "LoRA gradients",
    "optimizer_state": "optimizer state",
    "activations": "activations kept for backward",
    "backward_workspace": "backward workspace",
    "logits": "logits / loss",
    "cuda_context": "CUDA context",
    "allocator_overhead": "allocator overhead",
}


# -- the recipe-level estimate -----------------------------------------------------------------


@dataclass
class FitReport:
    model: str
    backend: str
    vram_gib: float | None
    total_gib: float
    components: dict[str, float]
    verdict: str  # "fits" | "tight" | "does not fit" | "unknown"
    max_batch_size: int
    max_seq_length: int
    advice: str
    reason: str = ""  # why the verdict is "unknown"; where the architecture came from
    arch_source: str = ""
    batch_size: int = 0
    seq_length: int = 0
    checkpointing: str = ""
    activations_by_mode: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def workload_for(recipe: Recipe, backend: str = "unsloth", *, on_gpu: bool = True) -> Workload:
    """What a recipe asks of the GPU with a backend ("unsloth", "reference"; "auto" = unsloth)."""
    backend = "unsloth" if backend == "auto" else backend
    dtype = recipe.compute_dtype
    act = 4 if dtype == "float32" else 2
    targets = None if recipe.target_modules == ["all-linear"] else frozenset(recipe.target_modules)
    if backend == "unsloth":
        checkpointing = "offload" if recipe.gradient_checkpointing else "none"
        return Workload(
            batch=recipe.batch_size, seq=recipe.max_seq_length, lora_r=recipe.lora_r,
            targets=targets, lora_dropout=recipe.lora_dropout, checkpointing=checkpointing,
            profile="fused", act_bytes=act, weight16_bytes=act, optimizer=recipe.optimizer,
            load_in_4bit=recipe.load_in_4bit, logits="chunked", inputs_require_grad=True,
            attention_mask=recipe.batch_size > 1, on_gpu=on_gpu)
    checkpointing = "standard" if recipe.gradient_checkpointing else "none"
    return Workload(
        batch=recipe.batch_size, seq=recipe.max_seq_length, lora_r=recipe.lora_r, targets=targets,
        lora_dropout=recipe.lora_dropout, checkpointing=checkpointing,
        profile="amp" if act == 2 else "eager", act_bytes=act,
        # prepare_model_for_kbit_training upcasts every unquantised parameter to fp32
        weight16_bytes=4 if recipe.load_in_4bit else act, optimizer=recipe.optimizer,
        load_in_4bit=recipe.load_in_4bit, logits="chunked", inputs_require_grad=False,
        attention_mask=recipe.batch_size > 1, on_gpu=on_gpu)


def total_bytes(arch: Arch, w: Workload) -> int:
    return sum(breakdown(arch, w).values())


def _largest(fits: Any, lo: int, hi: int) -> int:
    """Largest n in [lo, hi] with fits(n), assuming fits is monotone; 0 if none."""
    if not fits(lo):
        return 0
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if fits(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def max_batch(arch: Arch, w: Workload, limit: float) -> int:
    return _largest(lambda b: total_bytes(arch, replace(w, batch=b, attention_mask=b > 1)) <= limit,
                    1, MAX_SEARCH_BATCH)


def max_seq(arch: Arch, w: Workload, limit: float) -> int:
    return _largest(lambda s: total_bytes(arch, replace(w, seq=s)) <= limit, 16, MAX_SEARCH_SEQ)


def verdict_for(total_gib: float, vram_gib: float | None) -> str:
    if vram_gib is None:
        return "unknown"
    if total_gib <= vram_gib * (1 - TIGHT_MARGIN):
        return "fits"
    if total_gib <= vram_gib:
        return "tight"
    return "does not fit"


def estimate(recipe: Recipe, vram_gib: float | None = None, *,
             backend: str = "unsloth") -> FitReport:
    """Peak VRAM of training ``recipe`` with ``backend`` on a card of ``vram_gib`` GiB.

    Never raises for an unknown model: the verdict is then "unknown" with the reason. A recipe
    with ``batch_size: auto`` (0) is estimated at the batch ``auto_batch_size`` picks.
    """
    backend = "unsloth" if backend == "auto" else backend
    if recipe.batch_size == 0:
        recipe = replace(recipe, batch_size=auto_batch_size(recipe, vram_gib, backend=backend)
                         or AUTO_BATCH_FALLBACK)
    arch, source = resolve_arch(recipe)
    if arch is None:
        return FitReport(model=recipe.model, backend=backend, vram_gib=vram_gib, total_gib=0.0,
                         components={}, verdict="unknown", max_batch_size=0, max_seq_length=0,
                         advice="", reason=source, batch_size=recipe.batch_size,
                         seq_length=recipe.max_seq_length)
    w = workload_for(recipe, backend)
    reason = f"architecture from {source}"
    if (backend == "unsloth" and not arch.tied and vram_gib is not None
            and verdict_for(total_bytes(arch, w) / GIB, vram_gib) != "fits"):
        w = replace(w, offload_embedding=True)
        reason += ("; Unsloth moves the input embeddings "
                   f"({arch.vocab * arch.hidden * w.weight16_bytes / GIB:.2f} GiB) to CPU RAM "
                   "when the card is tight, counted so")
    parts = breakdown(arch, w)
    total = sum(parts.values()) / GIB
    acts = activations(arch, w)
    by_mode = {mode: (acts.peak(mode)) / GIB for mode in CHECKPOINTING}
    verdict = verdict_for(total, vram_gib)
    max_b = max_s = 0
    advice = ""
    if vram_gib is None:
        reason = f"no card size (no GPU detected and no --vram given); {reason}"
    else:
        limit = vram_gib * GIB
        max_b = max_batch(arch, w, limit)
        max_s = max_seq(arch, w, limit)
        if verdict != "fits":
            advice = _advice(recipe, arch, w, vram_gib, total)
    return FitReport(
        model=recipe.model, backend=backend, vram_gib=vram_gib, total_gib=total,
        components={k: v / GIB for k, v in parts.items()}, verdict=verdict,
        max_batch_size=max_b, max_seq_length=max_s, advice=advice, reason=reason,
        arch_source=source, batch_size=w.batch, seq_length=w.seq, checkpointing=w.checkpointing,
        activations_by_mode=by_mode)


AUTO_BATCH_FALLBACK = 2  # batch_size auto without a card to fit against: the schema default


def auto_batch_size(recipe: Recipe, vram_gib: float | None, *, backend: str = "unsloth") -> int:
    """``batch_size: auto``: the largest batch whose estimate stays under 90 % of the card
    (``1 - TIGHT_MARGIN``), at the recipe's sequence length and checkpointing; 0 when the
    architecture is unknown, no card size is known, or even a batch of 1 does not fit."""
    backend = "unsloth" if backend == "auto" else backend
    arch, _ = resolve_arch(recipe)
    if arch is None or vram_gib is None:
        return 0
    w = workload_for(replace(recipe, batch_size=max(recipe.batch_size, 1)), backend)
    return max_batch(arch, w, vram_gib * (1 - TIGHT_MARGIN) * GIB)


def _advice(recipe: Recipe, arch: Arch, w: Workload, vram_gib: float, total_gib: float) -> str:
    """The --set changes that would bring the run under 90 % of the card, best first."""
    limit = vram_gib * (1 - TIGHT_MARGIN) * GIB
    head = (f"needs {total_gib:.1f} GiB of a {vram_gib:g} GiB card" if total_gib > vram_gib
            else f"tight: {total_gib:.1f} GiB of a {vram_gib:g} GiB card leaves little headroom")
    options: list[str] = []
    if w.checkpointing == "none":
        mode = "offload" if w.profile == "fused" else "standard"
        if total_bytes(arch, replace(w, checkpointing=mode)) <= limit:
            options.append("--set gradient_checkpointing=true")
    b = max_batch(arch, w, limit)
    if 0 < b < w.batch:
        # the largest batch that fits and divides the effective batch, so it stays the same
        effective = recipe.batch_size * recipe.gradient_accumulation_steps
        b = next(n for n in range(b, 0, -1) if effective % n == 0)
        options.append(f"--set batch_size={b} --set gradient_accumulation_steps="
                       f"{effective // b} (same effective batch, {effective})")
    s = max_seq(arch, w, limit)
    if 0 < s < w.seq:
        options.append(f"--set max_seq_length={_round_down(s)}")
    if not options:
        smallest = replace(w, batch=1, seq=256, attention_mask=False,
                           checkpointing="offload" if w.profile == "fused" else "standard")
        floor = total_bytes(arch, smallest) / GIB
        if floor > vram_gib * (1 - TIGHT_MARGIN):
            return (f"{head}; even batch_size=1 at 256 tokens with gradient checkpointing needs "
                    f"{floor:.1f} GiB: use a smaller model or a card with at least "
                    f"{math.ceil(floor / (1 - TIGHT_MARGIN))} GiB")
        combo = max_seq(arch, replace(w, batch=1, attention_mask=False), limit)
        return (f"{head}; would fit with --set batch_size=1 --set max_seq_length="
                f"{_round_down(combo)}")
    return f"{head}; would fit with " + ", or ".join(options)


def _round_down(seq: int) -> int:
    """A sequence length people type: a multiple of 64 (or of 16 when short)."""
    step = 64 if seq >= 128 else 16
    return max(16, seq // step * step)


def detect_vram_gib() -> float | None:
    """Total memory of CUDA device 0 in GiB, or None without one. Imports torch."""
    try:
        import torch
    except ImportError:
        return None
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_properties(0).total_memory / GIB
