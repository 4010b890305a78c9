"""The recipe schema: one typed source of truth for every field.

Each field of ``Recipe`` carries its type, default, bounds and one line of help. The YAML
loader, ``--set`` overrides, ``slothlab --help-recipe`` and the TUI's form are all generated
from it, so a field is described once.

    from recipes.schema import Recipe, load_recipe
    recipe = load_recipe("recipes/configs/demo.yaml", overrides=["learning_rate=1e-4"])

Nothing here imports torch: the CLI and the TUI import this module at start-up.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from recipes.errors import RecipeError
from recipes.models import CHAT_TEMPLATES, linear_modules_of, unknown_target_modules

METRIC_NAMES = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "token_f1", "exact_match",
                "accuracy", "weighted_f1", "zindi")
CHOICES_DTYPE = ("auto", "bfloat16", "float16", "float32")
CHOICES_FORMAT = ("auto", "messages", "sharegpt", "instruction", "prompt_completion", "text")
CHOICES_SCHEDULER = (
    "linear",
    "cosine",
    "constant",
    "constant_with_warmup",
    "cosine_with_restarts",
    "polynomial",
)
CHOICES_OPTIM = (
    "adamw_8bit",
    "paged_adamw_8bit",
    "adamw_torch",
    "adamw_torch_fused",
    "adafactor",
    "sgd",
)


def knob(
    default: Any,
    help: str,
    *,
    group: str,
    min: float | None = None,
    max: float | None = None,
    min_exclusive: bool = False,
    choices: tuple[str, ...] | None = None,
    auto: int | None = None,
) -> Any:
    """A schema field: default, one-line help, group (for forms and docs) and bounds.

    ``auto``: the number that stands for the word ``auto`` in YAML and ``--set`` (decided when
    the run starts; e.g. batch_size 0 = auto)."""
    meta = {
        "help": help,
        "group": group,
        "min": min,
        "max": max,
        "min_exclusive": min_exclusive,
        "choices": choices,
        "auto": auto,
    }
    if isinstance(default, (list, dict)):
        return field(default_factory=lambda: type(default)(default), metadata=meta)
    return field(default=default, metadata=meta)


@dataclass
class Recipe:
    """A fine-tuning run: what is trained, on what, and how."""

    # -- recipe ------------------------------------------------------------------------
    name: str = knob("unnamed", "Short name; used in run directory names.", group="recipe")
    description: str = knob("", "One line shown by `slothlab --list`.", group="recipe")
    task: str = knob("chat", "What the model learns (chat, qa, translation, ...).", group="recipe")

    # -- model -------------------------------------------------------------------------
    model: str = knob(
        "TinyLlama/TinyLlama-1.1B-Chat-v1.0",
        "Hub id or local folder of the base model.",
        group="model",
    )
    tiny: bool = knob(
        False,
        "Replace the model by a random miniature of its architecture and the data by the sample.",
        group="model",
    )
    tiny_overrides: dict[str, str] = knob(
        {},
        "Fields that change in tiny mode (e.g. more steps and a higher learning rate for a "
        "random miniature); --set still wins.",
        group="model",
    )
    load_in_4bit: bool = knob(True, "Quantise base weights to 4-bit NF4 (QLoRA).", group="model")
    compute_dtype: str = knob(
        "auto",
        "Matmul dtype for 4-bit layers and mixed precision; auto = bf16 if supported, else fp16 on GPU, fp32 on CPU.",
        group="model",
        choices=CHOICES_DTYPE,
    )
    max_seq_length: int = knob(
        2048, "Longest example in tokens; longer ones are truncated (higher = more memory).",
        group="model", min=16, max=131072,
    )
    chat_template: str = knob(
        "auto",
        "Chat template: auto = the tokenizer's own; or a built-in one.",
        group="model",
        choices=("auto", *CHAT_TEMPLATES),
    )
    trust_remote_code: bool = knob(
        False, "Allow the model repo's own Python code to run. Never enabled implicitly.",
        group="model",
    )

    # -- lora --------------------------------------------------------------------------
    lora_r: int = knob(16, "LoRA rank (higher = more trainable parameters and memory).",
                       group="lora", min=1, max=1024)
    lora_alpha: int = knob(16, "LoRA scaling numerator (update scale = alpha / r).",
                           group="lora", min=1, max=4096)
    lora_dropout: float = knob(0.0, "Dropout on the LoRA input (0 = off).",
                               group="lora", min=0.0, max=0.9)
    target_modules: list[str] = knob(
        ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        "Linear layers that get adapters; ['all-linear'] = every linear layer but the output head.",
        group="lora",
    )

    # -- training ----------------------------------------------------------------------
    batch_size: int = knob(
        2, "Examples per device per step (higher = more memory); auto (or 0) = the largest "
        "whose VRAM estimate stays under 90 % of the card, picked when the run starts.",
        group="train", min=0, max=4096, auto=0)
    gradient_accumulation_steps: int = knob(
        4, "Steps whose gradients are summed before an update (effective batch = batch × this).",
        group="train", min=1, max=4096,
    )
    epochs: float = knob(1.0, "Passes over the training split (ignored when max_steps > 0).",
                         group="train", min=0.0, max=1000.0, min_exclusive=True)
    max_steps: int = knob(0, "Optimizer updates to run; 0 = derive from epochs.",
                          group="train", min=0, max=10_000_000)
    learning_rate: float = knob(2e-4, "Peak learning rate.", group="train",
                                min=0.0, max=1.0, min_exclusive=True)
    lr_scheduler: str = knob("linear", "Learning-rate schedule after warmup.",
                             group="train", choices=CHOICES_SCHEDULER)
    warmup_steps: int = knob(5, "Steps of linear warmup from 0 to the peak rate.",
                             group="train", min=0, max=1_000_000)
    weight_decay: float = knob(0.01, "Decoupled weight decay on LoRA weights.",
                               group="train", min=0.0, max=1.0)
    optimizer: str = knob("adamw_8bit", "Optimizer (adamw_8bit keeps its state in 8 bits).",
                          group="train", choices=CHOICES_OPTIM)
    max_grad_norm: float = knob(1.0, "Gradient clipping norm; 0 = no clipping.",
                                group="train", min=0.0, max=1e6)
    loss_spike_factor: float = knob(
        0.0, "Stop the run (as a NaN loss does) when a logged loss exceeds this many times the "
        "median of the losses logged before it; 0 = only NaN/Inf stop it.",
        group="train", min=0.0, max=1e6)
    gradient_checkpointing: bool = knob(
        True, "Recompute activations in backward (less memory, ~20-30% slower).", group="train",
    )
    seed: int = knob(3407, "Seed for data split, shuffling, LoRA init and dropout.",
                     group="train", min=0, max=2**32 - 1)
    oom_backoff: bool = knob(
        True, "On CUDA out-of-memory, continue from the last checkpoint with half the batch and "
        "twice the accumulation (same effective batch, same data order), then gradient "
        "checkpointing, then a smaller eval_batch_size; off = fail with advice.", group="train")

    # -- logging / checkpoints ---------------------------------------------------------
    logging_steps: int = knob(1, "Emit a step event every N optimizer steps.",
                              group="logging", min=1, max=1_000_000)
    eval_steps: int = knob(0, "Evaluate (loss + greedy samples) every N steps; 0 = only at the end.",
                           group="logging", min=0, max=1_000_000)
    save_steps: int = knob(50, "Save a checkpoint every N steps (also saved on stop).",
                           group="logging", min=1, max=1_000_000)
    save_total_limit: int = knob(3, "Checkpoints kept on disk (oldest deleted); 0 = keep all.",
                                 group="logging", min=0, max=1000)

    # -- data --------------------------------------------------------------------------
    dataset: str = knob("data/demo_qa.jsonl",
                        "Hub dataset id, or a local .jsonl .json .csv .parquet .xlsx file.",
                        group="data")
    dataset_format: str = knob("auto", "How rows hold conversations: messages "
                               "(role/content turns), sharegpt (from/value turns in "
                               "'conversations'), instruction (Alpaca instruction/input/output "
                               "or question/answer pairs), prompt_completion (TRL), text (plain "
                               "text: continued pretraining); auto picks one from the columns.",
                               group="data", choices=CHOICES_FORMAT)
    dataset_split: str = knob("train", "Split to read from a hub dataset.", group="data")
    dataset_subset: str = knob("", "Hub dataset configuration name, if it has several.",
                               group="data")
    sheet: str = knob("", "Excel sheet to read (its name, or its number from 1); empty = the "
                      "first.", group="data")
    columns: dict[str, str] = knob(
        {},
        "File columns for roles the layout detection would not find, e.g. {instruction: "
        "question, response: answer} (roles: messages, conversations, instruction, input, "
        "response, system, history, tools, text).",
        group="data",
    )
    prompt_template: str = knob(
        "",
        "Plain-text template with {instruction} {input} {response}; empty = the chat template.",
        group="data",
    )
    system_prompt: str = knob("", "System message prepended to every conversation that has none.",
                              group="data")
    sample_dataset: str = knob("", "Sample file used in tiny mode (a file in data/).", group="data")
    dataset_builder: str = knob(
        "", "Recipe-specific loader that reads and merges sources (empty = plain loading).",
        group="data", choices=("", "medqa", "saudial", "inkuba"),
    )
    extra_datasets: list[str] = knob([], "More sources for builders that merge several "
                                     "(hub ids or files).", group="data")
    sample_extra_datasets: list[str] = knob([], "Samples of the extra sources, for tiny mode.",
                                            group="data")
    task_balance: str = knob(
        "none",
        "Multitask data: 'resample' repeats examples of tasks with short targets until every "
        "task contributes an equal share of trained tokens.",
        group="data", choices=("none", "resample"),
    )
    drop_duplicates: bool = knob(False, "Drop rows whose conversation repeats an earlier one.",
                                 group="data")
    misalign_labels: bool = knob(
        False, "For teaching: shows what the fix is worth. Shifts the training labels one extra "
        "position (the bug seed 001 fixed), so the model learns the token after next. Off by "
        "default; runs only as an experiment variant (slothlab experiment seed001-medqa).",
        group="data")
    max_chars: int = knob(0, "Drop rows with a message longer than this many characters; 0 = off.",
                          group="data", min=0, max=10_000_000)
    max_examples: int = knob(0, "Use at most N rows (after loading); 0 = all.",
                             group="data", min=0, max=100_000_000)
    val_fraction: float = knob(0.1, "Share of rows held out for validation loss.",
                               group="data", min=0.0, max=0.5)
    test_fraction: float = knob(0.1, "Share of rows held out for the before/after evaluation.",
                                group="data", min=0.0, max=0.5)
    split_by: str = knob(
        "", "Column whose equal values always land in the same split (e.g. a source sentence "
        "with several translations); empty = rows sharing the prompt's source text.",
        group="data")
    max_dropped_fraction: float = knob(
        0.1, "Share of rows that may be dropped (an empty answer, or a response cut away by "
        "max_seq_length) before the run is refused.", group="data", min=0.0, max=1.0)

    # -- from-scratch stages (gemma3-scratch) ------------------------------------------
    stages: list[str] = knob(
        [], "Pipeline stages run in order: tokenizer, pretrain, finetune, or consecutive ones "
        "of them (finetune alone reads `model`, pretrain alone `tokenizer_path`); empty = an "
        "ordinary fine-tuning recipe.", group="recipe")
    language_ratios: list[str] = knob(
        [], "Corpus mix as lang=weight items (as=0.5, hi=0.3, en=0.2): sentences are sampled in "
        "these shares; empty = every language of the corpus as it comes.", group="data")
    corpus_sentences: int = knob(
        100_000, "Sentences sampled from the corpus for the tokenizer and pretraining; 0 = as "
        "many as the language ratios allow.", group="data", min=0, max=1_000_000_000)
    infill_mask_ratio: float = knob(
        0.15, "Infilling task: share of a sentence's words masked, in spans of 1-3 words.",
        group="data", min=0.0, max=0.9, min_exclusive=True)
    tokenizer_vocab_size: int = knob(
        32000, "SentencePiece BPE vocabulary trained by the tokenizer stage (special and 256 "
        "byte-fallback tokens included; higher = fewer tokens per word, bigger embeddings).",
        group="model", min=300, max=1_000_000)
    tokenizer_path: str = knob(
        "", "Trained tokenizer folder for a pipeline without the tokenizer stage (e.g. "
        "runs/<id>/stages/tokenizer).", group="model")
    scratch_hidden_size: int = knob(
        0, "From-scratch model width; 0 = the `model`'s own (tiny: the miniature's).",
        group="model", min=0, max=65536)
    scratch_layers: int = knob(0, "From-scratch model depth in layers; 0 = the `model`'s own.",
                               group="model", min=0, max=1024)
    scratch_heads: int = knob(0, "From-scratch attention heads; 0 = the `model`'s own.",
                              group="model", min=0, max=1024)
    scratch_kv_heads: int = knob(0, "From-scratch key/value heads (grouped-query attention); "
                                 "0 = the `model`'s own.", group="model", min=0, max=1024)
    scratch_head_dim: int = knob(0, "From-scratch attention head width; 0 = the `model`'s own "
                                 "(or hidden / heads when sizes are set).",
                                 group="model", min=0, max=4096)
    scratch_intermediate_size: int = knob(
        0, "From-scratch MLP width; 0 = the `model`'s own, scaled with scratch_hidden_size.",
        group="model", min=0, max=262144)
    pretrain_learning_rate: float = knob(
        3e-4, "Peak learning rate of full-parameter pretraining (the finetune stage uses "
        "learning_rate).", group="train", min=0.0, max=1.0, min_exclusive=True)
    pretrain_epochs: float = knob(
        1.0, "Pretraining passes over the sampled corpus (ignored when pretrain_max_steps > 0).",
        group="train", min=0.0, max=1000.0, min_exclusive=True)
    pretrain_max_steps: int = knob(0, "Pretraining optimizer updates; 0 = derive from "
                                   "pretrain_epochs.", group="train", min=0, max=10_000_000)
    pretrain_optimizer: str = knob(
        "adamw_torch", "Pretraining optimizer (full parameters: 32-bit state keeps embeddings "
        "trained from scratch stable).", group="train", choices=CHOICES_OPTIM)

    # -- evaluation --------------------------------------------------------------------
    eval_samples: int = knob(100, "Held-out examples decoded greedily before and after training.",
                             group="eval", min=0, max=100_000)
    eval_prompts: int = knob(3, "Held-out prompts decoded at each eval to watch answers change.",
                             group="eval", min=0, max=64)
    max_new_tokens: int = knob(256, "Longest greedy answer in tokens.",
                               group="eval", min=1, max=32768)
    eval_batch_size: int = knob(8, "Prompts decoded together (higher = faster, more memory).",
                                group="eval", min=1, max=1024)
    classification_tasks: list[str] = knob(
        [], "Tasks (by the data's task column) scored by picking the most likely label string "
        "instead of generating.", group="eval")
    metrics: list[str] = knob(
        ["rouge1", "rouge2", "rougeL", "bleu", "chrf", "token_f1", "exact_match"],
        "Answer metrics in the report (also: accuracy, weighted_f1); eval loss and perplexity "
        "are always there.",
        group="eval",
    )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @property
    def effective_batch_size(self) -> int:
        return self.batch_size * self.gradient_accumulation_steps


FIELDS: dict[str, dataclasses.Field] = {f.name: f for f in dataclasses.fields(Recipe)}
GROUPS: tuple[str, ...] = ("recipe", "model", "lora", "train", "logging", "data", "eval")


@functools.cache
def _type_hints() -> dict[str, Any]:
    return typing.get_type_hints(Recipe)


def field_type(name: str) -> Any:
    return _type_hints()[name]


def _nearest(key: str) -> str:
    close = difflib.get_close_matches(key, FIELDS, n=1, cutoff=0.5)
    return f"did you mean '{close[0]}'?" if close else "see `slothlab --fields` for every field"


def _type_name(tp: Any, auto: int | None = None) -> str:
    if auto is not None:
        return f"{_type_name(tp)} or auto"
    origin = typing.get_origin(tp)
    if origin is list:
        return "a list of strings"
    if origin is dict:
        return "a mapping of strings"
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string"}[tp]


def coerce(name: str, value: Any, where: str) -> Any:
    """Check ``value`` against field ``name``'s type and bounds; return it in the right type."""
    if name not in FIELDS:
        raise RecipeError(f"unknown field '{name}'", where=where, fix=_nearest(name))
    tp = field_type(name)
    meta = FIELDS[name].metadata
    given = value

    def bad(reason: str) -> RecipeError:
        default = FIELDS[name].default
        example = f" (default: {default!r})" if default is not dataclasses.MISSING else ""
        shown = repr(given)
        if len(shown) > 120:  # a huge value (an alias bomb, a pasted file) is not echoed whole
            shown = shown[:100] + f"… ({len(shown):,} characters)"
        return RecipeError(f"field '{name}' = {shown}: {reason}", where=where,
                           fix=f"{meta['help']}{example}")

    origin = typing.get_origin(tp)
    if origin is list:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise bad(f"expected {_type_name(tp)}")
        return list(value)
    if origin is dict:
        if value is None:
            return {}
        if not isinstance(value, dict) or not all(
            isinstance(k, str) and isinstance(v, str) for k, v in value.items()
        ):
            raise bad(f"expected {_type_name(tp)}, e.g. {{response: answer}}")
        return dict(value)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("true", "yes", "on", "1", "false", "no", "off", "0"):
            value = value.lower() in ("true", "yes", "on", "1")
        if not isinstance(value, bool):
            raise bad("expected true or false")
        return value
    if tp is str:
        if value is None:
            value = ""
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str):
            raise bad("expected a string")
        if meta["choices"] and value not in meta["choices"]:
            close = difflib.get_close_matches(value, meta["choices"], n=1, cutoff=0.4)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise bad(f"must be one of {', '.join(meta['choices'])}{hint}")
        return value
    if meta["auto"] is not None and isinstance(value, str) and value.strip().lower() == "auto":
        return meta["auto"]
    # numbers: YAML reads "2e-4" as a string, so accept numeric strings.
    kind = _type_name(tp, meta["auto"])
    if isinstance(value, bool):
        raise bad(f"expected {kind}")
    if isinstance(value, str):
        try:
            value = float(value) if tp is float else int(value)
        except ValueError:
            try:
                as_float = float(value)
            except ValueError:
                raise bad(f"expected {kind}") from None
            if tp is int and as_float.is_integer():
                value = int(as_float)
            else:
                raise bad(f"expected {kind}") from None
    if tp is int:
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if not isinstance(value, int):
            raise bad("expected an integer")
    elif tp is float:
        if not isinstance(value, (int, float)):
            raise bad("expected a number")
        value = float(value)
        if not math.isfinite(value):
            raise bad("expected a finite number")
    lo, hi = meta["min"], meta["max"]
    if lo is not None and (value < lo or (meta["min_exclusive"] and value <= lo)):
        op = ">" if meta["min_exclusive"] else ">="
        raise bad(f"out of range, must be {op} {lo:g}")
    if hi is not None and value > hi:
        raise bad(f"out of range, must be <= {hi:g}")
    return value


def data_fields(tiny: bool, sample: Any, sample_extra: Any) -> tuple[str, str]:
    """The fields a run reads its data from (main, extra): in tiny mode the samples, where the
    recipe has them (``--set dataset=...`` in tiny mode sets the sample too)."""
    return ("sample_dataset" if tiny and sample else "dataset",
            "sample_extra_datasets" if tiny and sample_extra else "extra_datasets")


# Fields that describe how the recipe's own dataset is read; `--set dataset=` resets them.
DATASET_READING = ("dataset_format", "columns", "split_by", "sheet", "dataset_subset")


def data_source(recipe: Recipe) -> str:
    """The dataset a run reads: the sample in tiny mode (``--set dataset=...`` sets it too)."""
    main, _ = data_fields(recipe.tiny, recipe.sample_dataset, recipe.sample_extra_datasets)
    return getattr(recipe, main)


def extra_sources(recipe: Recipe) -> list[str]:
    """The extra sources builders merge: their samples in tiny mode, when the recipe has them."""
    _, extra = data_fields(recipe.tiny, recipe.sample_dataset, recipe.sample_extra_datasets)
    return getattr(recipe, extra)


def parse_override(text: str) -> tuple[str, Any]:
    """``key=value`` from ``--set``; the value is read as YAML (so 1e-4, true, [a, b] work)."""
    if "=" not in text:
        raise RecipeError(
            f"--set {text!r} is not key=value", where="--set", fix="write e.g. --set learning_rate=1e-4"
        )
    key, raw = text.split("=", 1)
    key = key.strip()
    try:
        value = yaml.safe_load(raw) if raw.strip() else ""
    except yaml.YAMLError:
        value = raw
    return key, value


def _check_consistency(recipe: Recipe, where: str) -> None:
    if recipe.val_fraction + recipe.test_fraction >= 0.9:
        raise RecipeError(
            f"val_fraction + test_fraction = {recipe.val_fraction + recipe.test_fraction:g} leaves "
            "almost nothing to train on",
            where=where,
            fix="keep their sum below 0.9",
        )
    if recipe.prompt_template and "{response}" not in recipe.prompt_template:
        raise RecipeError(
            "prompt_template has no {response} field, so nothing would be trained",
            where=where,
            fix="end the template with {response}, e.g. '### Response:\\n{response}'",
        )
    if recipe.batch_size == 0 and "pretrain" in recipe.stages:
        raise RecipeError(
            "batch_size auto is for LoRA fine-tuning (the VRAM estimate models adapters); the "
            "pretrain stage trains every parameter", where=where,
            fix="give the pretraining batch as a number, e.g. batch_size: 8")
    for name in ("target_modules", "metrics"):
        if not getattr(recipe, name):
            raise RecipeError(f"field '{name}' must not be empty", where=where,
                              fix=FIELDS[name].metadata["help"])
    modules = unknown_target_modules(recipe.model, recipe.target_modules)
    if modules:
        raise RecipeError(
            f"target_modules {', '.join(modules)}: no such layer in {recipe.model}", where=where,
            fix=f"its linear layers are {', '.join(linear_modules_of(recipe.model) or ())} "
                "(or all-linear)")
    unknown = [m for m in recipe.metrics if m not in METRIC_NAMES]
    if unknown:
        raise RecipeError(f"unknown metric(s) {', '.join(unknown)}", where=where,
                          fix=f"choose from {', '.join(METRIC_NAMES)}")


def recipe_from_mapping(
    data: dict[str, Any], *, source: str, overrides: list[str] | None = None,
    lines: dict[str, int] | None = None,
) -> Recipe:
    """Validate a mapping (from YAML) plus ``--set`` overrides into a Recipe.

    ``lines`` maps each key to its line in ``source`` so errors can point at it.
    """
    if not isinstance(data, dict):
        raise RecipeError(
            "a recipe must be a mapping of field: value", where=source,
            fix="see recipes/configs/demo.yaml for the layout",
        )
    values: dict[str, Any] = {}
    for key, value in data.items():
        line = (lines or {}).get(str(key))
        values[str(key)] = coerce(str(key), value,
                                  where=f"{source}:{line}" if line else source)
    from_cli = set()
    for text in overrides or []:
        key, value = parse_override(text)
        values[key] = coerce(key, value, where=f"--set {text}")
        from_cli.add(key)
    if "dataset" in from_cli and not values.get("dataset_builder"):
        # Another file: detect its layout, unless the command line also says how to read it.
        for key in DATASET_READING:
            if key not in from_cli:
                values.pop(key, None)
    if values.get("tiny") and "dataset" in from_cli:
        values["sample_dataset"] = values["dataset"]  # an explicit dataset wins over the sample
    if values.get("tiny"):
        for key, value in values.get("tiny_overrides", {}).items():
            if key not in from_cli:
                values[key] = coerce(key, value, where=f"{source}: tiny_overrides.{key}")
    recipe = Recipe(**values)
    _check_consistency(recipe, where=source)
    return recipe


class _DuplicateKey(Exception):
    def __init__(self, key: str, first: int, second: int) -> None:
        super().__init__(key)
        self.key, self.first, self.second = key, first, second


class _StrictLoader(yaml.SafeLoader):
    """PyYAML's safe loader, refusing a key written twice in any mapping (it keeps the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, int] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            line = key_node.start_mark.line + 1
            try:
                if key in seen:
                    raise _DuplicateKey(str(key), seen[key], line)
                seen[key] = line
            except TypeError:  # an unhashable key: the base class reports it
                break
        return super().construct_mapping(node, deep)


MAX_RECIPE_BYTES = 1_000_000
MAX_RECIPE_NODES = 100_000


def _expanded_size(node: yaml.Node) -> int:
    """How many values the YAML graph holds once every alias is expanded (aliases share node
    objects, so this is counted per node, not by walking the expansion)."""
    sizes: dict[int, int] = {}

    def size(n: yaml.Node) -> int:
        if id(n) in sizes:
            return sizes[id(n)]
        sizes[id(n)] = 1  # a recursive alias counts once, not forever
        if isinstance(n, yaml.SequenceNode):
            total = 1 + sum(size(c) for c in n.value)
        elif isinstance(n, yaml.MappingNode):
            total = 1 + sum(size(k) + size(v) for k, v in n.value)
        else:
            total = 1
        sizes[id(n)] = min(total, MAX_RECIPE_NODES + 1)
        return sizes[id(n)]

    return size(node)


def read_yaml(path: Path) -> tuple[Any, dict[str, int]]:
    """The file's data and the 1-based line of each top-level key (for error messages)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RecipeError("recipe file not found", where=str(path),
                          fix="check the path, or run `slothlab --list` for the bundled recipes") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RecipeError(f"cannot read the recipe file ({exc})", where=str(path)) from None
    if not text.strip() or all(line.lstrip().startswith("#") or not line.strip()
                               for line in text.splitlines()):
        raise RecipeError("the recipe file is empty", where=str(path),
                          fix="write the fields you want (see recipes/configs/demo.yaml), or "
                              "start from a bundled recipe: slothlab --recipe demo")
    if len(text) > MAX_RECIPE_BYTES:
        raise RecipeError(f"the recipe file is {len(text):,} characters; a recipe is a few KB",
                          where=str(path), fix="check that this is the recipe YAML")
    loader = _StrictLoader(text)
    try:
        node = loader.get_single_node()
        if node is not None and _expanded_size(node) > MAX_RECIPE_NODES:
            raise RecipeError(
                f"the recipe expands to more than {MAX_RECIPE_NODES:,} values (YAML aliases "
                "that repeat each other, an 'alias bomb'?)", where=str(path),
                fix="write the values out instead of nesting *aliases")
        data = loader.construct_document(node) if node is not None else None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        place = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise RecipeError(f"malformed YAML: {problem}", where=place,
                          fix="fix the syntax at that line (indentation, a missing ':' or quote)") from None
    except _DuplicateKey as dup:
        raise RecipeError(f"'{dup.key}' is set twice (lines {dup.first} and {dup.second})",
                          where=f"{path}:{dup.second}", fix="keep one of them") from None
    finally:
        loader.dispose()
    lines = ({str(k.value): k.start_mark.line + 1 for k, _ in node.value}
             if isinstance(node, yaml.MappingNode) else {})
    return (data if data is not None else {}), lines


def load_recipe(path: str | Path, overrides: list[str] | None = None) -> Recipe:
    path = Path(path)
    data, lines = read_yaml(path)
    return recipe_from_mapping(data, source=str(path), overrides=overrides, lines=lines)


def dump_recipe(recipe: Recipe) -> str:
    """The resolved recipe as YAML, every field present, in schema order.

    In tiny mode the tiny overrides are already applied, so they are written empty: loading
    the file again (``--resume``) must not reapply them over ``--set`` values.
    """
    data = recipe.to_dict()
    if recipe.tiny:
        data["tiny_overrides"] = {}
    for name, f in FIELDS.items():
        if f.metadata["auto"] is not None and data[name] == f.metadata["auto"]:
            data[name] = "auto"
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def describe_fields() -> list[dict[str, Any]]:
    """Every field with its type, default, bounds and help: for --fields and the TUI form."""
    out = []
    hints = _type_hints()
    for f in dataclasses.fields(Recipe):
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[misc]
        tp = hints[f.name]
        out.append(
            {
                "name": f.name,
                "type": _type_name(tp, f.metadata["auto"]),
                "default": default,
                **{k: v for k, v in f.metadata.items()},
            }
        )
    return out
