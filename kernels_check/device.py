"""The device report: what this machine has, and which backend `--backend auto` would pick.

    slothlab check --device --json      # one JSON object (the TUI's device panel reads it)

Whether unsloth imports is asked of a child process: its import patches TRL and transformers
for the whole process (and a half-finished one would leave patched modules behind). Without a
GPU, unsloth 2026.10.9 imports and selects its own CPU backend (``--backend unsloth`` runs it;
``auto`` still picks reference there); with UNSLOTH_DISABLE_CPU_FALLBACK=1 it raises instead.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

GIB = 2**30
UNSLOTH_PROBE_TIMEOUT_S = 300
# Versions are read from package metadata: importing xformers or unsloth to ask would load
# CUDA kernels (or fail) in this process.
PACKAGES = ("bitsandbytes", "triton", "xformers", "unsloth")


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def package_version(name: str) -> str | None:
    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None


def unsloth_problem(timeout_s: int = UNSLOTH_PROBE_TIMEOUT_S) -> str | None:
    """None if ``import unsloth`` works on this machine, else why not (asked of a child process,
    with this process's environment: no UNSLOTH_ALLOW_CPU is added)."""
    if importlib.util.find_spec("unsloth") is None:
        return "unsloth is not installed"
    root = Path(__file__).resolve().parents[1]
    try:
        # cwd: a successful import writes an unsloth_compiled_cache/ folder where it runs
        with tempfile.TemporaryDirectory(prefix="kernels_check-probe-") as tmp:
            proc = subprocess.run([sys.executable, "-c", "import unsloth"], capture_output=True,
                                  text=True, timeout=timeout_s, cwd=tmp,
                                  env={**os.environ, "PYTHONPATH": os.pathsep.join(
                                      filter(None, [str(root), os.environ.get("PYTHONPATH")]))})
    except subprocess.TimeoutExpired:
        return f"import unsloth did not finish within {timeout_s} s"
    if proc.returncode == 0:
        return None
    return "import unsloth failed: " + _last_error_line(proc.stderr)


def _last_error_line(stderr: str) -> str:
    """The exception line of a traceback (``Type: message``), else the last line."""
    lines = [line.strip() for line in stderr.strip().splitlines() if line.strip()]
    for line in reversed(lines):
        head = line.split(":", 1)[0]
        if head.endswith(("Error", "Exception", "Exit", "Interrupt")) and " " not in head:
            return line[:200]
    return lines[-1][:200] if lines else "no error output"


def device_report(*, probe_unsloth: bool = True) -> dict[str, Any]:
    """Facts about torch, CUDA and the GPU, library versions, and the auto backend choice."""
    from recipes.backends import select_backend

    report: dict[str, Any] = {
        "torch": None, "cuda_available": False, "cuda_version": None, "gpu_name": None,
        "compute_capability": None, "vram_total_gib": None, "vram_free_gib": None,
        "bf16": False,
    }
    try:
        import torch

        report["torch"] = torch.__version__
        report["cuda_version"] = torch.version.cuda
        if torch.cuda.is_available():
            props = torch.cuda.get_device_properties(0)
            free, total = torch.cuda.mem_get_info(0)
            report.update(
                cuda_available=True, gpu_name=props.name,
                compute_capability=f"{props.major}.{props.minor}",
                vram_total_gib=round(total / GIB, 2), vram_free_gib=round(free / GIB, 2),
                bf16=bool(torch.cuda.is_bf16_supported()),
            )
    except ImportError:
        report["torch"] = "not installed"
    for name in PACKAGES:
        report[name] = package_version(name)
    problem = unsloth_problem() if probe_unsloth else "not probed"
    report["unsloth_importable"] = problem is None
    report["unsloth_problem"] = problem
    choice = select_backend("auto", cuda=report["cuda_available"], unsloth_problem=problem)
    report["backend"] = choice.name
    report["backend_reason"] = choice.reason
    return report


DEVICE_FIELDS = ("torch", "cuda_available", "cuda_version", "gpu_name", "compute_capability",
                 "vram_total_gib", "vram_free_gib", "bf16", "bitsandbytes", "triton", "xformers",
                 "unsloth", "unsloth_importable", "unsloth_problem", "backend", "backend_reason")
