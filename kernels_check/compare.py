"""The backends side by side on the same tiny model: loss agreement, speed and memory.

    slothlab check --compare-backends                 # the tiny demo model, offline
    slothlab check --compare-backends --model DIR     # a local model folder (e.g. TinyLlama; GPU)

Each backend runs in its own child process (Unsloth must be imported before transformers,
trl and peft, and must not patch the reference run).

On a GPU: load the model 4-bit with LoRA exactly as training does (recipes.backends.<name>.load),
then run three optimizer steps of adamw_8bit on one fixed batch. Reported per backend: the loss
of the first step (the adapters start as a no-op, so both backends compute the same 4-bit base
model's loss), the loss after one update, tokens/s over the last two steps, and peak VRAM
(allocated and reserved), next to the fit estimate for the same settings.

On a CPU (Unsloth's CPU backend): a short training of the demo recipe through the real runner,
fp32 on both, every step logged. Reported: the largest relative difference between the two
loss curves, steps/s of each and peak memory (RSS), and the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

BACKENDS = ("reference", "unsloth")
STEPS = 3
BATCH, SEQ = 2, 256
# bf16 on two code paths: the first loss must agree to this relative tolerance
LOSS_RTOL = 0.02
# fp32 on a CPU, the same data order and seed: the curves agree to float rounding
CPU_TRAIN_STEPS = 20
CPU_LOSS_RTOL = 1e-4
CHILD_TIMEOUT_S = 900
ROOT = Path(__file__).resolve().parents[1]


def compare_backends(model: str | None = None, *, cuda: bool | None = None,
                     timeout_s: int = CHILD_TIMEOUT_S, steps: int = CPU_TRAIN_STEPS
                     ) -> dict[str, Any]:
    """Run each backend's child and compare (a step on a GPU, a short training on a CPU)."""
    if cuda is None:
        from kernels_check.device import cuda_available

        cuda = cuda_available()
    if not cuda:
        runs = {name: _run_child(name, "demo", "cpu", timeout_s, ["--train-steps", str(steps)])
                for name in BACKENDS}
        return summarise_cpu(runs, steps)
    folder = model or str(tiny_model_folder())
    runs = {name: _run_child(name, folder, "cuda", timeout_s) for name in BACKENDS}
    return summarise(runs, folder)


def summarise_cpu(runs: dict[str, dict[str, Any]], steps: int) -> dict[str, Any]:
    failed = {name: run["error"] for name, run in runs.items() if "error" in run}
    if failed:
        return {"status": "failed", "model": "demo (tiny)", "backends": runs, "device": "cpu",
                "reason": "; ".join(f"{k}: {v}" for k, v in failed.items())}
    ref, fast = runs["reference"]["losses"], runs["unsloth"]["losses"]
    diffs = [abs(u - r) / max(abs(r), 1e-9) for r, u in zip(ref, fast, strict=False)]
    diff = max(diffs) if diffs and len(ref) == len(fast) else float("inf")
    status = "passed" if diff <= CPU_LOSS_RTOL else "failed"
    return {"status": status, "model": "demo (tiny)", "device": "cpu", "backends": runs,
            "steps": steps, "loss_rel_diff": diff, "loss_rtol": CPU_LOSS_RTOL,
            "speedup": runs["unsloth"]["steps_per_second"]
            / max(runs["reference"]["steps_per_second"], 1e-9),
            "memory_ratio": runs["unsloth"]["peak_rss_gib"]
            / max(runs["reference"]["peak_rss_gib"], 1e-9),
            "reason": (f"loss curves differ by up to {diff:.2e} (tolerance {CPU_LOSS_RTOL:g})"
                       if status == "failed" else "")}


def summarise(runs: dict[str, dict[str, Any]], model: str) -> dict[str, Any]:
    failed = {name: run["error"] for name, run in runs.items() if "error" in run}
    if failed:
        return {"status": "failed", "model": model, "backends": runs,
                "reason": "; ".join(f"{k}: {v}" for k, v in failed.items())}
    ref, fast = runs["reference"], runs["unsloth"]
    diff = abs(fast["first_loss"] - ref["first_loss"]) / max(abs(ref["first_loss"]), 1e-9)
    status = "passed" if diff <= LOSS_RTOL else "failed"
    return {"status": status, "model": model, "backends": runs, "loss_rel_diff": diff,
            "loss_rtol": LOSS_RTOL,
            "speedup": fast["tokens_per_second"] / max(ref["tokens_per_second"], 1e-9),
            "vram_ratio": fast["peak_reserved_gib"] / max(ref["peak_reserved_gib"], 1e-9),
            "reason": (f"first-step loss differs by {diff:.2%} (tolerance {LOSS_RTOL:.0%})"
                       if status == "failed" else "")}


def train_child(backend: str, steps: int) -> dict[str, Any]:
    """A short training of the demo through the real runner with ``backend`` (CPU, fp32)."""
    from recipes import events as ev
    from recipes.runner import RunOptions, run
    from recipes.schema import load_recipe

    recipe = load_recipe(ROOT / "recipes/configs/demo.yaml", overrides=[
        f"max_steps={steps}", "logging_steps=1", "eval_steps=0", "eval_samples=0",
        "eval_prompts=0", f"save_steps={steps * 10}", "compute_dtype=float32"])
    steps_seen: list[ev.Step] = []
    settings: dict[str, str] = {}

    def collect(event: ev.Event) -> None:
        if isinstance(event, ev.Step):
            steps_seen.append(event)
        elif isinstance(event, ev.Preflight):
            settings.update(event.settings)

    with tempfile.TemporaryDirectory(prefix="kernels_check-train-") as tmp:
        run(recipe, RunOptions(backend=backend, runs_root=Path(tmp), listeners=[collect]))
    timed = steps_seen[1:] or steps_seen
    seconds = max(timed[-1].time - timed[0].time, 1e-9) if len(timed) > 1 else float("nan")
    return {"backend": backend, "device": "cpu", "losses": [s.loss for s in steps_seen],
            "first_loss": steps_seen[0].loss if steps_seen else None,
            "steps_per_second": (len(timed) - 1) / seconds if len(timed) > 1 else 0.0,
            "peak_rss_gib": steps_seen[-1].memory.peak_mb / 1024 if steps_seen else 0.0,
            "settings": settings}


def tiny_model_folder() -> Path:
    """The demo recipe's miniature (built once, cached like training's)."""
    from recipes.data.prepare import load_examples
    from recipes.host import cache_root
    from recipes.schema import load_recipe
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    recipe = load_recipe(ROOT / "recipes/configs/demo.yaml", overrides=[f"max_seq_length={SEQ}"])
    examples, _, _ = load_examples(recipe, recipe.dataset, base_dirs=[ROOT])
    return build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache_root())


def _run_child(backend: str, model: str, device: str, timeout_s: int,
               extra: list[str] | None = None) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="kernels_check-step-") as tmp:
        out = Path(tmp) / "step.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        cmd = [sys.executable, "-m", "kernels_check.compare", "--child", backend,
               "--model", model, "--device", device, "--out", str(out), *(extra or [])]
        try:
            proc = subprocess.run(cmd, env=env, cwd=tmp, capture_output=True, text=True,
                                  timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return {"error": f"ran past {timeout_s} s"}
        try:
            return json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            lines = [x for x in (proc.stderr or proc.stdout).strip().splitlines() if x.strip()]
            return {"error": f"exit {proc.returncode}: {lines[-1][:300] if lines else 'no output'}"}


def _step_recipe(model: str) -> Any:
    from recipes.schema import Recipe

    return Recipe(name="compare-backends", model=model, max_seq_length=SEQ, batch_size=BATCH,
                  gradient_accumulation_steps=1, lora_r=16, lora_alpha=16, lora_dropout=0.0,
                  gradient_checkpointing=True, optimizer="adamw_8bit", learning_rate=1e-3,
                  seed=3407)


def child(backend: str, model: str, device: str) -> dict[str, Any]:
    """Load with the backend, step three times on a fixed batch, measure."""
    from recipes.backends import select_backend

    select_backend(backend)  # imports unsloth first when it is the backend
    import torch

    recipe = _step_recipe(model)
    if backend == "unsloth":
        from recipes.backends import unsloth as loader
    else:
        from recipes.backends import reference as loader  # type: ignore[no-redef]
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    started = time.perf_counter()
    peft_model, tokenizer = loader.load(model, recipe, device)
    load_s = time.perf_counter() - started
    peft_model.train()
    vocab = min(len(tokenizer), peft_model.get_input_embeddings().weight.shape[0])
    generator = torch.Generator().manual_seed(recipe.seed)
    ids = torch.randint(0, vocab, (BATCH, SEQ), generator=generator).to(device)
    from bitsandbytes.optim import AdamW8bit

    params = [p for p in peft_model.parameters() if p.requires_grad]
    optimizer = AdamW8bit(params, lr=recipe.learning_rate)
    dtype = torch.bfloat16 if device == "cuda" and torch.cuda.is_bf16_supported() else (
        torch.float16 if device == "cuda" else torch.float32)
    losses, times = [], []
    for _ in range(STEPS):
        if device == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with torch.autocast(device_type=device, dtype=dtype, enabled=device == "cuda"):
            loss = peft_model(input_ids=ids, labels=ids, use_cache=False).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
        losses.append(float(loss.detach()))
    timed = times[1:] or times
    result: dict[str, Any] = {
        "backend": backend, "device": device, "first_loss": losses[0], "losses": losses,
        "tokens_per_second": BATCH * SEQ * len(timed) / sum(timed), "load_seconds": load_s,
        "batch": BATCH, "seq": SEQ, "lora_r": recipe.lora_r,
    }
    if device == "cuda":
        result["peak_allocated_gib"] = torch.cuda.max_memory_allocated() / 2**30
        result["peak_reserved_gib"] = torch.cuda.max_memory_reserved() / 2**30
        from kernels_check.fit import estimate

        report = estimate(recipe, torch.cuda.get_device_properties(0).total_memory / 2**30,
                          backend=backend)
        result["estimate_gib"] = report.total_gib
        result["estimate_tensors_gib"] = report.total_gib - report.components.get(
            "cuda_context", 0.0)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kernels_check.compare")
    parser.add_argument("--child", choices=BACKENDS, required=True)
    parser.add_argument("--model", required=True)
    parser.add_argument("--device", default="cuda", choices=("cuda", "cpu"))
    parser.add_argument("--out", required=True)
    parser.add_argument("--train-steps", type=int, default=0,
                        help="train the demo this many steps through the runner (CPU comparison)")
    args = parser.parse_args(argv)
    try:
        result = (train_child(args.child, args.train_steps) if args.train_steps
                  else child(args.child, args.model, args.device))
    except Exception as exc:
        result = {"error": f"{type(exc).__name__}: {str(exc).splitlines()[0][:300] if str(exc) else ''}"}
    Path(args.out).write_text(json.dumps(result), encoding="utf-8")
    return 0 if "error" not in result else 1


if __name__ == "__main__":
    sys.exit(main())
