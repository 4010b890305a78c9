"""Kernel numerics: Unsloth's fused kernels against plain PyTorch, forward and backward.

    slothlab check                      # runs these as part of the report
    python -m kernels_check.numerics    # one JSON list on stdout (the child side, see below)

Every check draws random inputs of a realistic (small) shape, runs Unsloth's kernel and a
plain PyTorch reference, and compares outputs and gradients: max |a - b| against
tol = atol + rtol * max |reference| (TOLERANCES, per dtype). The result of each check is
{name, status: passed | failed | skipped, max_abs_err, tol, reason}.

The checks always run in a child process (``run_numerics``): on a CPU that child sets
UNSLOTH_ALLOW_CPU=1 (lets unsloth import without a GPU) and TRITON_INTERPRET=1 (runs the Triton
kernels in Triton's interpreter), switches that must never leak into a training process; on a
GPU the child keeps the parent clean of Unsloth's patches. A check that cannot run here is
"skipped" with the reason, never "passed": cross-entropy and NF4 dequantisation are tried on a
CPU and reported with the error they raise.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

# (atol, rtol) per dtype: the error allowed is atol + rtol * max|reference|.
TOLERANCES = {"float32": (1e-5, 1e-5), "bfloat16": (1e-2, 2e-2), "float16": (2e-3, 5e-3)}
CPU_ENV = {"UNSLOTH_ALLOW_CPU": "1", "TRITON_INTERPRET": "1"}
RESULT_FILE_ENV = "KERNELS_CHECK_RESULTS"
CHILD_TIMEOUT_S = 600


@dataclass
class CheckResult:
    name: str
    status: str  # "passed" | "failed" | "skipped"
    max_abs_err: float | None = None
    tol: float | None = None
    reason: str = ""
    shape: str = ""
    dtype: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


# Every check, in report order: name, what it compares, and whether it is expected to run in
# the Triton interpreter on a CPU (an exception there is then a failure, not a skip).
CHECKS: list[tuple[str, str, bool]] = [
    ("SwiGLU", "swiglu_fg_kernel / swiglu_DWf_DW_dfg_kernel vs silu(e) * g", True),
    ("GeGLU (exact)", "geglu_exact_forward/backward_kernel vs gelu(e) * g", True),
    # triton_tanh (libdevice) has no interpreter implementation
    ("GeGLU (tanh)", "geglu_approx_forward/backward_kernel vs gelu_tanh(e) * g", False),
    ("RMSNorm", "fast_rms_layernorm vs LlamaRMSNorm math", True),
    ("RMSNorm (Gemma)", "fast_rms_layernorm(gemma=True) vs (1 + w) RMSNorm", True),
    ("RoPE", "fast_rope_embedding vs q * cos + rotate_half(q) * sin", True),
    ("RoPE (position ids)", "fast_rope_embedding with rope indices vs gathered cos/sin", True),
    ("LoRA_MLP (SwiGLU)", "LoRA_MLP.apply vs down(silu(gate(x)) * up(x)) with LoRA", True),
    ("LoRA_MLP (GeGLU)", "LoRA_MLP.apply with geglu kernels vs PyTorch", True),
    ("LoRA_QKV", "LoRA_QKV.apply vs three LoRA linears", True),
    ("LoRA_W", "LoRA_W.apply vs one LoRA linear", True),
    ("cross-entropy", "fast_cross_entropy_loss vs F.cross_entropy (ignore_index -100)", False),
    ("NF4 dequantize", "Unsloth's NF4 dequantize vs bitsandbytes dequantize_4bit", False),
    ("LoRA_MLP (NF4 base)", "LoRA_MLP.apply on a 4-bit base vs dequantised PyTorch", False),
]


# -- parent side -------------------------------------------------------------------------------


def run_numerics(*, cuda: bool | None = None, timeout_s: int = CHILD_TIMEOUT_S,
                 python: str | None = None) -> list[CheckResult]:
    """Run every check in a child process; the switches it needs stay in that child."""
    if cuda is None:
        from kernels_check.device import cuda_available

        cuda = cuda_available()
    env = {k: v for k, v in os.environ.items() if k not in CPU_ENV}
    if not cuda:
        env.update(CPU_ENV)
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    with tempfile.TemporaryDirectory(prefix="kernels_check-") as tmp:
        out = Path(tmp) / "results.json"
        env[RESULT_FILE_ENV] = str(out)
        root = Path(__file__).resolve().parents[1]
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(root), env.get("PYTHONPATH")]))
        started = time.perf_counter()
        try:
            # cwd: Unsloth writes an unsloth_compiled_cache/ folder wherever it is imported
            proc = subprocess.run([python or sys.executable, "-m", "kernels_check.numerics"],
                                  env=env, cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return _all(f"the check process ran past {timeout_s} s and was stopped", "failed")
        results = _read_results(out)
        if results is not None and proc.returncode in (0, 3):
            return results
        tail = _tail(proc.stderr or proc.stdout)
        if proc.returncode == 3 and results is None:
            return _all(f"unsloth.kernels cannot be imported here: {tail}", "skipped")
        done = {r.name for r in results or []}
        why = (f"the check process died (exit {proc.returncode}) after "
               f"{time.perf_counter() - started:.0f} s: {tail}")
        return (results or []) + [CheckResult(n, "failed", reason=why)
                                  for n, _, _ in CHECKS if n not in done]


def _read_results(path: Path) -> list[CheckResult] | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return [CheckResult(**item) for item in data]


def _all(reason: str, status: str) -> list[CheckResult]:
    return [CheckResult(name, status, reason=reason) for name, _, _ in CHECKS]


def _tail(text: str) -> str:
    lines = [line.strip() for line in (text or "").strip().splitlines() if line.strip()]
    return lines[-1][:300] if lines else "no output"


# -- child side --------------------------------------------------------------------------------


def _child() -> int:
    """Import Unsloth's kernels, run every check, write the results as JSON. Exit 3 = no import."""
    out_path = os.environ.get(RESULT_FILE_ENV)
    try:
        import torch
        import unsloth  # noqa: F401  (sets up its patches and device type first)
        from unsloth import kernels  # noqa: F401
    except Exception as exc:  # NotImplementedError on a CPU without UNSLOTH_ALLOW_CPU, etc.
        print(f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}",
              file=sys.stderr)
        return 3
    cuda = torch.cuda.is_available()
    device = "cuda" if cuda else "cpu"
    if cuda:
        dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    else:
        dtype = torch.float32  # the Triton interpreter computes through numpy
    results = []
    for name, _, cpu_expected in CHECKS:
        torch.manual_seed(3407)
        started = time.perf_counter()
        try:
            result = CHECK_FUNCTIONS[name](device, dtype)
        except Exception as exc:  # a kernel or the interpreter raised
            reason = f"{type(exc).__name__}: {str(exc).splitlines()[0][:240] if str(exc) else ''}"
            if cuda or cpu_expected:
                result = CheckResult(name, "failed", reason=f"raised {reason}")
            else:
                result = CheckResult(name, "skipped",
                                     reason=f"cannot run on this CPU (Triton interpreter): "
                                            f"{reason}")
        result.seconds = round(time.perf_counter() - started, 2)
        result.dtype = result.dtype or str(dtype).removeprefix("torch.")
        results.append(result)
        if out_path:  # written after every check, so a crash keeps what finished
            Path(out_path).write_text(json.dumps([r.to_dict() for r in results]),
                                      encoding="utf-8")
    if not out_path:
        print(json.dumps([r.to_dict() for r in results]))
    return 0


def _compare(name: str, pairs: list[tuple[Any, Any]], dtype: Any, shape: str,
             note: str = "") -> CheckResult:
    """One result over several (actual, reference) tensor pairs: the worst error decides."""
    atol, rtol = TOLERANCES[str(dtype).removeprefix("torch.")]
    worst_err, worst_tol, failed = 0.0, 0.0, []
    for index, (actual, reference) in enumerate(pairs):
        a, ref = actual.detach().float(), reference.detach().float()
        if a.shape != ref.shape:
            return CheckResult(name, "failed", reason=f"output {index}: shape {tuple(a.shape)} "
                               f"!= reference {tuple(ref.shape)}", shape=shape)
        err = (a - ref).abs().max().item() if a.numel() else 0.0
        tol = atol + rtol * (ref.abs().max().item() if ref.numel() else 0.0)
        if not err <= tol:  # also catches NaN
            failed.append(index)
        if err / tol >= worst_err / max(worst_tol, 1e-30):
            worst_err, worst_tol = err, tol
    reason = note
    if failed:
        reason = f"outputs {failed} differ beyond tolerance" + (f"; {note}" if note else "")
    return CheckResult(name, "failed" if failed else "passed", max_abs_err=worst_err,
                       tol=worst_tol, reason=reason, shape=shape)


# shapes: small enough for the interpreter, laid out like a real layer
BATCH, SEQ, HIDDEN, INTER, HEADS, KV_HEADS, HEAD_DIM, RANK = 1, 32, 256, 512, 4, 2, 64, 8


def _glu_check(name: str, forward: Callable, backward: Callable, reference: Callable,
               device: str, dtype: Any) -> CheckResult:
    import torch

    e = torch.randn(BATCH, SEQ, INTER, device=device, dtype=dtype)
    g = torch.randn(BATCH, SEQ, INTER, device=device, dtype=dtype)
    dw = torch.randn(BATCH * SEQ, INTER, device=device, dtype=dtype)
    h = forward(e, g)
    e_ref = e.detach().clone().requires_grad_(True)
    g_ref = g.detach().clone().requires_grad_(True)
    h_ref = reference(e_ref.float(), g_ref.float()).to(dtype)
    h_ref.backward(dw.view_as(h_ref))
    # backward kernels work in place on 2-D (tokens, hidden) buffers: DW <- h, e <- dL/dg, g <- dL/de
    h2, dg, de = backward(dw.clone(), e.view(-1, INTER).clone(), g.view(-1, INTER).clone())
    return _compare(name, [(h, h_ref), (h2, h_ref.view(-1, INTER)),
                           (dg, g_ref.grad.view(-1, INTER)), (de, e_ref.grad.view(-1, INTER))],
                    dtype, f"({BATCH}, {SEQ}, {INTER})")


def check_swiglu(device: str, dtype: Any) -> CheckResult:
    import torch.nn.functional as F
    from unsloth.kernels import swiglu_DWf_DW_dfg_kernel, swiglu_fg_kernel

    return _glu_check("SwiGLU", swiglu_fg_kernel, swiglu_DWf_DW_dfg_kernel,
                      lambda e, g: F.silu(e) * g, device, dtype)


def check_geglu_exact(device: str, dtype: Any) -> CheckResult:
    import torch.nn.functional as F
    from unsloth.kernels import geglu_exact_backward_kernel, geglu_exact_forward_kernel

    return _glu_check("GeGLU (exact)", geglu_exact_forward_kernel, geglu_exact_backward_kernel,
                      lambda e, g: F.gelu(e) * g, device, dtype)


def check_geglu_tanh(device: str, dtype: Any) -> CheckResult:
    import torch.nn.functional as F
    from unsloth.kernels import geglu_approx_backward_kernel, geglu_approx_forward_kernel

    return _glu_check("GeGLU (tanh)", geglu_approx_forward_kernel, geglu_approx_backward_kernel,
                      lambda e, g: F.gelu(e, approximate="tanh") * g, device, dtype)


def _rms_check(name: str, gemma: bool, device: str, dtype: Any) -> CheckResult:
    import torch
    from unsloth.kernels import fast_rms_layernorm

    class Norm(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.weight = torch.nn.Parameter(
                torch.randn(HIDDEN, device=device, dtype=dtype) * 0.1 + (0.0 if gemma else 1.0))
            self.variance_epsilon = 1e-6

    norm = Norm()
    x = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype)
    y = fast_rms_layernorm(norm, x, gemma=gemma)
    y.backward(dy)
    x_ref = x.detach().clone().requires_grad_(True)
    w_ref = norm.weight.detach().clone().requires_grad_(True)
    x32 = x_ref.float()
    normed = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + norm.variance_epsilon)
    if gemma:
        y_ref = (normed * (1.0 + w_ref.float())).to(dtype)
    else:
        y_ref = w_ref * normed.to(dtype)
    y_ref.backward(dy)
    return _compare(name, [(y, y_ref), (x.grad, x_ref.grad), (norm.weight.grad, w_ref.grad)],
                    dtype, f"({BATCH}, {SEQ}, {HIDDEN})")


def check_rms(device: str, dtype: Any) -> CheckResult:
    return _rms_check("RMSNorm", False, device, dtype)


def check_rms_gemma(device: str, dtype: Any) -> CheckResult:
    return _rms_check("RMSNorm (Gemma)", True, device, dtype)


def _rotate_half(x: Any) -> Any:
    import torch

    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def _rope_tables(device: str, dtype: Any, length: int) -> tuple[Any, Any]:
    import torch

    inv = 1.0 / (10000 ** (torch.arange(0, HEAD_DIM, 2, device=device).float() / HEAD_DIM))
    freqs = torch.outer(torch.arange(length, device=device).float(), inv)
    emb = torch.cat((freqs, freqs), dim=-1)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def _rope_check(name: str, with_positions: bool, device: str, dtype: Any) -> CheckResult:
    import torch
    from unsloth.kernels import fast_rope_embedding

    cos, sin = _rope_tables(device, dtype, 2 * SEQ)
    q = torch.randn(BATCH, HEADS, SEQ, HEAD_DIM, device=device, dtype=dtype, requires_grad=True)
    k = torch.randn(BATCH, KV_HEADS, SEQ, HEAD_DIM, device=device, dtype=dtype,
                    requires_grad=True)
    dq = torch.randn_like(q)
    dk = torch.randn_like(k)
    if with_positions:
        if device == "cpu":
            # The launch asks CUDA whether the GPU takes load eviction hints (sm_70+): a cache
            # hint with no effect on the result, and a question a CPU cannot answer.
            from unsloth.kernels import rope_embedding

            rope_embedding._eviction_hints_ok = lambda _device: False
        positions = torch.randint(0, 2 * SEQ, (BATCH, SEQ), device=device)
        q_out, k_out = fast_rope_embedding(q.clone(), k.clone(), cos, sin, positions)
        c, s = cos[positions].unsqueeze(1), sin[positions].unsqueeze(1)
    else:
        q_out, k_out = fast_rope_embedding(q.clone(), k.clone(), cos[:SEQ], sin[:SEQ])
        c, s = cos[:SEQ], sin[:SEQ]
    torch.autograd.backward((q_out, k_out), (dq, dk))
    q_ref = q.detach().clone().requires_grad_(True)
    k_ref = k.detach().clone().requires_grad_(True)
    q_exp = q_ref * c + _rotate_half(q_ref) * s
    k_exp = k_ref * c + _rotate_half(k_ref) * s
    torch.autograd.backward((q_exp, k_exp), (dq, dk))
    return _compare(name, [(q_out, q_exp), (k_out, k_exp), (q.grad, q_ref.grad),
                           (k.grad, k_ref.grad)],
                    dtype, f"q ({BATCH}, {HEADS}, {SEQ}, {HEAD_DIM}), kv heads {KV_HEADS}")


def check_rope(device: str, dtype: Any) -> CheckResult:
    return _rope_check("RoPE", False, device, dtype)


def check_rope_positions(device: str, dtype: Any) -> CheckResult:
    return _rope_check("RoPE (position ids)", True, device, dtype)


def _lora_weights(fan_in: int, fan_out: int, device: str, dtype: Any) -> tuple[Any, Any, Any]:
    """A frozen base weight and a LoRA pair (A: r x in, B: out x r) as nn.Linear stores them.

    B is random, not zero as at init, so the LoRA path is exercised. LoRA weights are fp32, as
    peft and Unsloth keep them.
    """
    import torch

    w = torch.randn(fan_out, fan_in, device=device, dtype=dtype) / fan_in**0.5
    a = (torch.randn(RANK, fan_in, device=device) / fan_in**0.5).requires_grad_(True)
    b = (torch.randn(fan_out, RANK, device=device) / RANK**0.5).requires_grad_(True)
    return w, a, b


def _lora_ref(x: Any, w: Any, a: Any, b: Any, s: float) -> Any:
    return x @ w.t() + s * ((x @ a.t().to(x.dtype)) @ b.t().to(x.dtype))


def _leaf(t: Any) -> Any:
    return t.detach().clone().requires_grad_(True)


def _lora_mlp_check(name: str, glu: str, device: str, dtype: Any) -> CheckResult:
    import torch
    import torch.nn.functional as F
    from unsloth.kernels import fast_lora
    from unsloth.kernels.geglu import geglu_exact_backward_kernel, geglu_exact_forward_kernel
    from unsloth.kernels.swiglu import swiglu_DWf_DW_dfg_kernel, swiglu_fg_kernel

    kernels = {"swiglu": (swiglu_fg_kernel, swiglu_DWf_DW_dfg_kernel, F.silu),
               "geglu": (geglu_exact_forward_kernel, geglu_exact_backward_kernel, F.gelu)}
    fwd, bwd, act = kernels[glu]
    s = 2.0
    gw, ga, gb = _lora_weights(HIDDEN, INTER, device, dtype)
    uw, ua, ub = _lora_weights(HIDDEN, INTER, device, dtype)
    dw_, da, db = _lora_weights(INTER, HIDDEN, device, dtype)
    x = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype)
    out = fast_lora.LoRA_MLP.apply(x, gw, None, ga, gb, s, uw, None, ua, ub, s,
                                   dw_, None, da, db, s, fwd, bwd, False)
    out.backward(dy)
    refs = [_leaf(t) for t in (x, ga, gb, ua, ub, da, db)]
    xr, gar, gbr, uar, ubr, dar, dbr = refs
    e = _lora_ref(xr, gw, gar, gbr, s)
    g = _lora_ref(xr, uw, uar, ubr, s)
    h = (act(e.float()) * g.float()).to(dtype)
    out_ref = _lora_ref(h, dw_, dar, dbr, s)
    out_ref.backward(dy)
    grads = [x.grad, ga.grad, gb.grad, ua.grad, ub.grad, da.grad, db.grad]
    return _compare(name, [(out, out_ref)] + [(gr, r.grad) for gr, r in zip(grads, refs,
                                                                          strict=True)],
                    dtype, f"x ({BATCH}, {SEQ}, {HIDDEN}), intermediate {INTER}, r={RANK}",
                    note="16-bit base weight")


def check_lora_mlp(device: str, dtype: Any) -> CheckResult:
    return _lora_mlp_check("LoRA_MLP (SwiGLU)", "swiglu", device, dtype)


def check_lora_mlp_geglu(device: str, dtype: Any) -> CheckResult:
    return _lora_mlp_check("LoRA_MLP (GeGLU)", "geglu", device, dtype)


def check_lora_qkv(device: str, dtype: Any) -> CheckResult:
    import torch
    from unsloth.kernels import fast_lora

    s = 2.0
    q = _lora_weights(HIDDEN, HEADS * HEAD_DIM, device, dtype)
    k = _lora_weights(HIDDEN, KV_HEADS * HEAD_DIM, device, dtype)
    v = _lora_weights(HIDDEN, KV_HEADS * HEAD_DIM, device, dtype)
    x = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype, requires_grad=True)
    dq = torch.randn(BATCH, SEQ, HEADS * HEAD_DIM, device=device, dtype=dtype)
    dk = torch.randn(BATCH, SEQ, KV_HEADS * HEAD_DIM, device=device, dtype=dtype)
    dv = torch.randn_like(dk)
    outs = fast_lora.LoRA_QKV.apply(x, q[0], None, q[1], q[2], s, k[0], None, k[1], k[2], s,
                                    v[0], None, v[1], v[2], s, False)
    torch.autograd.backward(outs, (dq, dk, dv))
    xr = _leaf(x)
    refs = [(_leaf(p[1]), _leaf(p[2])) for p in (q, k, v)]
    outs_ref = [_lora_ref(xr, p[0], a, b, s) for p, (a, b) in zip((q, k, v), refs, strict=True)]
    torch.autograd.backward(outs_ref, (dq, dk, dv))
    pairs = list(zip(outs, outs_ref, strict=True)) + [(x.grad, xr.grad)]
    for p, (a, b) in zip((q, k, v), refs, strict=True):
        pairs += [(p[1].grad, a.grad), (p[2].grad, b.grad)]
    return _compare("LoRA_QKV", pairs, dtype,
                    f"x ({BATCH}, {SEQ}, {HIDDEN}), q {HEADS * HEAD_DIM}, kv {KV_HEADS * HEAD_DIM}, "
                    f"r={RANK}", note="16-bit base weights")


def check_lora_w(device: str, dtype: Any) -> CheckResult:
    import torch
    from unsloth.kernels import fast_lora

    s = 2.0
    w, a, b = _lora_weights(HEADS * HEAD_DIM, HIDDEN, device, dtype)
    x = torch.randn(BATCH, SEQ, HEADS * HEAD_DIM, device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype)
    out = fast_lora.LoRA_W.apply(x, w, None, a, b, s)
    out.backward(dy)
    xr, ar, br = _leaf(x), _leaf(a), _leaf(b)
    out_ref = _lora_ref(xr, w, ar, br, s)
    out_ref.backward(dy)
    return _compare("LoRA_W", [(out, out_ref), (x.grad, xr.grad), (a.grad, ar.grad),
                               (b.grad, br.grad)], dtype,
                    f"x ({BATCH}, {SEQ}, {HEADS * HEAD_DIM}) -> {HIDDEN}, r={RANK}",
                    note="16-bit base weight")


def check_cross_entropy(device: str, dtype: Any) -> CheckResult:
    import torch
    import torch.nn.functional as F
    from unsloth.kernels import fast_cross_entropy_loss

    vocab = 4096
    logits = torch.randn(BATCH * 2, SEQ, vocab, device=device, dtype=dtype, requires_grad=True)
    labels = torch.randint(0, vocab, (BATCH * 2, SEQ), device=device)
    labels[:, : SEQ // 4] = -100  # prompt tokens are masked, as in responses-only training
    loss = fast_cross_entropy_loss(logits, labels)
    loss.backward()
    ref_logits = _leaf(logits)
    ref = F.cross_entropy(ref_logits.float().view(-1, vocab), labels.view(-1), ignore_index=-100)
    ref.backward()
    return _compare("cross-entropy", [(loss, ref), (logits.grad, ref_logits.grad)], dtype,
                    f"logits ({BATCH * 2}, {SEQ}, {vocab})")


def _nf4_weight(fan_in: int, fan_out: int, device: str, dtype: Any) -> tuple[Any, Any, Any]:
    """A bitsandbytes NF4 weight (double-quantised, as Unsloth loads them) and its dequantised
    copy from bitsandbytes itself: the reference."""
    import bitsandbytes.functional as bnbf
    import torch

    w = (torch.randn(fan_out, fan_in, device=device) / fan_in**0.5).to(dtype)
    packed, state = bnbf.quantize_4bit(w, blocksize=64, quant_type="nf4", compress_statistics=True)
    return packed, state, bnbf.dequantize_4bit(packed, state)


def _unsloth_dequantize(packed: Any, state: Any) -> Any:
    """Unsloth's own NF4 decode: its Triton kernel where Unsloth enabled it, else the ctypes
    path fast_dequantize takes. Called directly so that a kernel that cannot run raises here
    instead of being replaced, silently, by bitsandbytes' decode."""
    from unsloth.kernels import utils

    if getattr(utils, "_USE_NF4_KERNELS", False) and hasattr(utils, "_unpack_quant_state"):
        from unsloth.kernels.nf4 import dequantize_nf4

        absmax, shape, dtype, blocksize, code, code2, absmax2, offset, blocksize2 = (
            utils._unpack_quant_state(state))
        return dequantize_nf4(packed, absmax, code2, absmax2, offset, code, blocksize,
                              blocksize2, shape, dtype)
    return utils.fast_dequantize(packed, state)


def check_nf4_dequantize(device: str, dtype: Any) -> CheckResult:
    packed, state, reference = _nf4_weight(HIDDEN, INTER, device, dtype)
    actual = _unsloth_dequantize(packed, state)
    atol, _ = TOLERANCES[str(dtype).removeprefix("torch.")]
    err = (actual.float() - reference.float()).abs().max().item()
    # both decode the same 4-bit codes: they should agree to the last bit of the dtype
    tol = atol
    return CheckResult("NF4 dequantize", "passed" if err <= tol else "failed", err, tol,
                       shape=f"({INTER}, {HIDDEN})")


def check_lora_mlp_nf4(device: str, dtype: Any) -> CheckResult:
    import torch
    import torch.nn.functional as F
    from unsloth.kernels import fast_lora, utils
    from unsloth.kernels.swiglu import swiglu_DWf_DW_dfg_kernel, swiglu_fg_kernel

    s = 2.0
    weights = []
    for fan_in, fan_out in ((HIDDEN, INTER), (HIDDEN, INTER), (INTER, HIDDEN)):
        packed, state, dequantised = _nf4_weight(fan_in, fan_out, device, dtype)
        _, a, b = _lora_weights(fan_in, fan_out, device, dtype)
        weights.append((packed, state, dequantised, a, b))
    _unsloth_dequantize(weights[0][0], weights[0][1])  # raises where Unsloth's decode cannot run
    fused_nf4 = getattr(utils, "_USE_NF4_KERNELS", False)
    x = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype, requires_grad=True)
    dy = torch.randn(BATCH, SEQ, HIDDEN, device=device, dtype=dtype)
    args: list[Any] = [x]
    for packed, state, _, a, b in weights:
        args += [packed, state, a, b, s]
    out = fast_lora.LoRA_MLP.apply(*args, swiglu_fg_kernel, swiglu_DWf_DW_dfg_kernel, False)
    out.backward(dy)
    xr = _leaf(x)
    refs = [(_leaf(a), _leaf(b)) for *_, a, b in weights]
    (gw, uw, dw_) = (w[2] for w in weights)
    e = _lora_ref(xr, gw, *refs[0], s)
    g = _lora_ref(xr, uw, *refs[1], s)
    out_ref = _lora_ref((F.silu(e.float()) * g.float()).to(dtype), dw_, *refs[2], s)
    out_ref.backward(dy)
    pairs = [(out, out_ref), (x.grad, xr.grad)]
    for (*_, a, b), (ar, br) in zip(weights, refs, strict=True):
        pairs += [(a.grad, ar.grad), (b.grad, br.grad)]
    result = _compare("LoRA_MLP (NF4 base)", pairs, dtype,
                      f"x ({BATCH}, {SEQ}, {HIDDEN}), intermediate {INTER}, r={RANK}")
    if fused_nf4 and not getattr(utils, "_USE_NF4_KERNELS", False):
        # Unsloth switched itself to bitsandbytes' decode mid-run: its kernel was not tested
        return CheckResult(result.name, "skipped" if device == "cpu" else "failed",
                           reason="Unsloth's NF4 kernels failed during the run and it fell back "
                                  "to bitsandbytes", shape=result.shape)
    return result


CHECK_FUNCTIONS: dict[str, Callable[[str, Any], CheckResult]] = {
    "SwiGLU": check_swiglu,
    "GeGLU (exact)": check_geglu_exact,
    "GeGLU (tanh)": check_geglu_tanh,
    "RMSNorm": check_rms,
    "RMSNorm (Gemma)": check_rms_gemma,
    "RoPE": check_rope,
    "RoPE (position ids)": check_rope_positions,
    "LoRA_MLP (SwiGLU)": check_lora_mlp,
    "LoRA_MLP (GeGLU)": check_lora_mlp_geglu,
    "LoRA_QKV": check_lora_qkv,
    "LoRA_W": check_lora_w,
    "cross-entropy": check_cross_entropy,
    "NF4 dequantize": check_nf4_dequantize,
    "LoRA_MLP (NF4 base)": check_lora_mlp_nf4,
}


if __name__ == "__main__":
    sys.exit(_child())
