"""Merge a run's LoRA adapter into its base model and save it as a plain transformers folder.

    model = load_merged(base, adapter, recipe, torch.float32)      # for tests and tools
    notes = write_merged(base, adapter, recipe, folder, "bf16", progress, params, [...])

The merge is peft's ``merge_and_unload`` on the base loaded in 16 or 32 bit (never 4-bit: a
recipe that trained on NF4 weights is merged into the 16-bit base, as Unsloth's merged_16bit
does). The saved folder has the tokenizer with the run's chat template and a generation config
holding the eval's decoding, so ``AutoModelForCausalLM.from_pretrained`` needs nothing else.
"""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recipes.errors import ExportError, SlothlabError
from recipes.schema import Recipe

Progress = Callable[[str, float, float, str], None]  # stage, done, total, message


def count_parameters(base: str, recipe: Recipe) -> int:
    """Parameters of the base model, from its config (no weights loaded)."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(base, trust_remote_code=recipe.trust_remote_code)
    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(config,
                                                 trust_remote_code=recipe.trust_remote_code)
    return sum(p.numel() for p in model.parameters())


def load_merged(base: str, adapter: Path, recipe: Recipe, compute_dtype: Any,
                device: str = "cpu") -> Any:
    """The base model in ``compute_dtype`` with the adapter merged in (a plain transformers model)."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        base, dtype=compute_dtype, trust_remote_code=recipe.trust_remote_code,
        device_map=device)
    if getattr(model.config, "quantization_config", None) is not None:
        raise ExportError(f"{base} loads with quantised weights, which cannot be merged "
                          "losslessly", where="model",
                          fix="export from a run whose base is a 16-bit model (not *-bnb-4bit)")
    model = PeftModel.from_pretrained(model, str(adapter))
    return model.merge_and_unload()


def _merge_device(params: int) -> str:
    """The GPU when the 16-bit model fits in its free memory with room to spare, else the CPU
    (a 3B merge needs 6.4 GB: more than a 6 GB card has)."""
    import torch

    if not torch.cuda.is_available():
        return "cpu"
    free, _ = torch.cuda.mem_get_info()
    return "cuda" if 2 * params * 1.5 < free else "cpu"


def _compute_dtype(params: int, save_dtype: Any, device: str) -> Any:
    """fp32 on a CPU (exact merge, cast once when saved) when it fits in memory; else 16-bit."""
    import torch

    if device != "cpu":
        return save_dtype
    try:
        import psutil

        available = psutil.virtual_memory().available
    except ImportError:
        return torch.float32
    return torch.float32 if 4 * params * 1.3 < available else save_dtype


def load_tokenizer(base: str, adapter: Path, recipe: Recipe) -> Any:
    """The tokenizer the run trained with (saved beside its adapter), template as in training."""
    from transformers import AutoTokenizer

    from recipes.models import CHAT_TEMPLATES

    source = adapter if (adapter / "tokenizer_config.json").is_file() else base
    tokenizer = AutoTokenizer.from_pretrained(str(source),
                                              trust_remote_code=recipe.trust_remote_code)
    if recipe.chat_template not in ("", "auto"):
        tokenizer.chat_template = CHAT_TEMPLATES[recipe.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def stop_tokens(tokenizer: Any, recipe: Recipe) -> list[str]:
    """The strings generation stops at, as the eval stops: EOS and the template's end of turn."""
    from recipes.data.render import Renderer

    stops = [tokenizer.eos_token] if tokenizer.eos_token else []
    try:
        marker = getattr(Renderer(tokenizer, recipe), "end_of_turn", "")
    except SlothlabError:  # no chat template and no prompt template: EOS only
        marker = ""
    if marker and marker not in stops:
        stops.append(marker)
    return stops


def write_merged(base: str, adapter: Path, recipe: Recipe, folder: Path, save_dtype: str,
                 progress: Progress, params: int, sentencepiece_from: list[Path]) -> list[str]:
    """Merge and save into ``folder``; returns notes on what was done. ``sentencepiece_from``:
    folders that may hold the run's tokenizer.model (a wrapped tokenizer does not save it)."""
    import torch

    target = {"bf16": torch.bfloat16, "f16": torch.float16}[save_dtype]
    device = _merge_device(params)
    compute = _compute_dtype(params, target, device)
    progress("merge", 0, 3, f"loading {base} ({str(compute).removeprefix('torch.')}, "
                            f"{device})")
    model = load_merged(base, adapter, recipe, compute, device)
    progress("merge", 1, 3, f"merged {adapter.name} into the base")
    tokenizer = load_tokenizer(base, adapter, recipe)
    model = model.to(target)
    _set_generation_config(model, tokenizer, recipe)
    progress("merge", 2, 3, f"saving safetensors ({save_dtype}) to {folder}")
    folder.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    notes = []
    if _add_sentencepiece_model(sentencepiece_from, tokenizer, folder):
        notes.append("copied the run's SentencePiece tokenizer.model beside the tokenizer")
    progress("merge", 3, 3, "merged model saved")
    return notes


def _set_generation_config(model: Any, tokenizer: Any, recipe: Recipe) -> None:
    """The eval's decoding as the model's default: greedy, stopping where the eval stops."""
    config = model.generation_config
    stops = [tokenizer.convert_tokens_to_ids(t) for t in stop_tokens(tokenizer, recipe)]
    stops = [i for i in stops if isinstance(i, int) and i != tokenizer.unk_token_id]
    config.do_sample = False
    config.temperature = config.top_p = config.top_k = None
    config.max_new_tokens = recipe.max_new_tokens
    config.eos_token_id = stops[0] if len(stops) == 1 else stops or config.eos_token_id
    config.pad_token_id = tokenizer.pad_token_id
    config.bos_token_id = tokenizer.bos_token_id


def _add_sentencepiece_model(candidates: list[Path], tokenizer: Any, folder: Path) -> bool:
    """llama.cpp's converter reads a SentencePiece vocabulary from tokenizer.model, which a
    wrapped tokenizer does not save: copy the run's own, if it matches the tokenizer."""
    if (folder / "tokenizer.model").is_file():
        return False
    for folder_in in candidates:
        model_file = folder_in / "tokenizer.model"
        if model_file.is_file() and _same_vocabulary(model_file, tokenizer):
            shutil.copyfile(model_file, folder / "tokenizer.model")
            return True
    return False


def _same_vocabulary(model_file: Path, tokenizer: Any) -> bool:
    with contextlib.suppress(Exception):
        import sentencepiece as spm

        sp = spm.SentencePieceProcessor(model_file=str(model_file))
        pieces = [sp.id_to_piece(i) for i in range(sp.get_piece_size())]
        return tokenizer.convert_ids_to_tokens(list(range(len(pieces)))) == pieces
    return False
