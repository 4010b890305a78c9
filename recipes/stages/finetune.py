"""The finetune stage: LoRA adapters on a base model through the chosen backend, evaluated
greedily before (adapter off) and after training.

The base model is tiny mode's miniature (copied into the run, so the adapter is self-contained),
the model an earlier pretrain stage of the same run produced, or the recipe's ``model``. The
data is the recipe's dataset through recipes/data (or, for gemma3-scratch, its two tasks built
from the corpus). The adapter lands in ``adapter/`` of the run, which every front end reads.
"""

from __future__ import annotations

import math
import shutil
import time
from pathlib import Path
from typing import Any

from recipes import distributed
from recipes import events as ev
from recipes.backends import backend_module, load_model
from recipes.context import RunContext, StageOutcome
from recipes.disk import checkpoint_bytes, disk_note
from recipes.errors import RecipeError
from recipes.evaluation import Evaluation, perplexity, task_scores
from recipes.host import PROJECT_ROOT, cache_root
from recipes.hub import ensure_available
from recipes.oom import Backoff, record, resolve_auto_batch
from recipes.report import build_table
from recipes.rundir import ADAPTER, BASE, DONE, write_json
from recipes.schema import Recipe, extra_sources
from recipes.settings import effective_settings
from recipes.trainer import build_trainer


def check(recipe: Recipe) -> None:
    """The model this stage starts from must exist (or be on a reachable hub) before anything runs."""
    from recipes.data.sources import resolve_path

    if "pretrain" in recipe.stages or recipe.tiny and not recipe.stages:
        return
    local = Path(recipe.model).expanduser()
    if recipe.stages:  # gemma3-scratch's finetune alone: a model an earlier run pretrained
        if local.is_dir():
            if not (local / "config.json").is_file():
                raise RecipeError("no model in this folder (config.json missing)",
                                  where=f"model={recipe.model}",
                                  fix="point it at runs/<id>/stages/pretrain/model")
            return
        if recipe.tiny or recipe.model.startswith((".", "/", "~")) or recipe.model.count("/") > 1:
            raise RecipeError(
                f"the finetune stage alone needs a pretrained model folder; '{recipe.model}' "
                "is not one", where="model",
                fix="--set model=runs/<id>/stages/pretrain/model (a finished pretrain stage)")
    if resolve_path(recipe.model) is None:
        ensure_available(recipe.model, kind="model", field="model",
                         local_hint="/path/to/model_folder")
    for source in extra_sources(recipe) if recipe.stages else []:
        if resolve_path(source, base_dirs=[PROJECT_ROOT]) is None:
            ensure_available(source, kind="dataset", field="extra_datasets",
                             local_hint="/path/to/pairs.jsonl")


def base_model(ctx: RunContext) -> str | Path:
    recipe = ctx.recipe
    if "pretrain" in recipe.stages:
        return (ctx.folder("pretrain") / "model").resolve()
    if recipe.tiny and not recipe.stages:
        from recipes.tiny import build_tiny_model, tokenizer_corpus

        folder = build_tiny_model(recipe, tokenizer_corpus(recipe, ctx.loaded.examples),
                                  cache_root(ctx.options.cache_dir))
        target = ctx.run_dir / BASE
        if not target.exists():
            shutil.copytree(folder, target)
        return target
    local = Path(recipe.model).expanduser()
    return local.resolve() if recipe.stages and local.is_dir() else recipe.model


def prepare_data(ctx: RunContext, tokenizer: Any) -> Any:
    if ctx.corpus is not None:
        from recipes.stages.scratch_data import prepare_tasks

        return prepare_tasks(ctx.recipe, tokenizer, ctx.corpus)
    from recipes.data.prepare import prepare
    from recipes.schema import data_source

    loaded = ctx.loaded
    return prepare(ctx.recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                   source=data_source(ctx.recipe),
                   notes=[*fit_warning(ctx.recipe, ctx.device, ctx.backend.name), *loaded.notes])


def preflight_event(recipe: Recipe, data: Any, world_size: int = 1,
                    **settings: Any) -> ev.Preflight:
    """The preflight figures of prepared data, the optimizer steps the run will take (with
    ``world_size`` processes sharing each step), and ``settings`` / ``changes``: what really
    runs (recipes/settings.py)."""
    per_epoch = max(1, math.ceil(len(data.train) / (recipe.batch_size * world_size))
                    // recipe.gradient_accumulation_steps)
    total = recipe.max_steps or math.ceil(per_epoch * recipe.epochs)
    stats = data.stats
    return ev.Preflight(
        splits=data.splits.sizes(), tokens_min=stats["tokens_min"],
        tokens_median=stats["tokens_median"], tokens_max=stats["tokens_max"],
        trained_token_share=stats["trained_token_share"], truncated=stats["truncated"],
        no_trained_tokens=0, max_seq_length=recipe.max_seq_length, total_steps=total,
        notes=data.notes, task_shares=stats["task_shares"], world_size=world_size,
        global_batch=recipe.effective_batch_size * world_size, **settings)


def remote_code_note(recipe: Recipe, model_path: str | Path) -> list[str]:
    """With trust_remote_code, the model repository's own Python files this run executes."""
    if not recipe.trust_remote_code:
        return []
    folder = Path(model_path)
    if folder.is_dir():
        files = sorted(p.name for p in folder.glob("*.py"))
    else:
        files = remote_code_files(str(model_path))
    if not files:
        return [f"trust_remote_code: on, but {model_path} ships no Python code: transformers' "
                "own classes run"]
    return [f"trust_remote_code: runs the model repository's own code: {', '.join(files)} "
            f"(from {model_path})"]


def remote_code_files(repo_id: str) -> list[str]:
    """The code files a hub model's config maps its classes to (read from the local cache)."""
    import json

    try:
        from huggingface_hub import try_to_load_from_cache

        path = try_to_load_from_cache(repo_id, "config.json")
        config = json.loads(Path(path).read_text(encoding="utf-8")) if isinstance(path, str) else {}
    except Exception:
        return ["(unknown until the config is downloaded)"]
    refs = [v for v in (config.get("auto_map") or {}).values() for v in
            (v if isinstance(v, list) else [v]) if isinstance(v, str)]
    return sorted({ref.split("--")[-1].split(".")[0] + ".py" for ref in refs})


def dtype_note(recipe: Recipe, device: str) -> list[str]:
    """compute_dtype auto is a choice made here; say which (a CPU computes in fp32 on every host)."""
    if recipe.compute_dtype != "auto":
        return []
    from recipes.backends.reference import resolve_dtype

    chosen = str(resolve_dtype("auto", device)).removeprefix("torch.")
    why = ("a CPU always computes in float32, whatever its bf16 support" if device != "cuda"
           else "what this GPU supports")
    return [f"compute_dtype auto: {chosen} ({why})"]


def fit_warning(recipe: Recipe, device: str, backend: str) -> list[str]:
    """A preflight note when the VRAM estimate says this recipe will not fit the card."""
    if device != "cuda" or recipe.tiny:
        return []
    from kernels_check.fit import detect_vram_gib, estimate

    report = estimate(recipe, detect_vram_gib(), backend=backend)
    if report.verdict != "does not fit":
        return []
    return [f"WARNING: estimated peak {report.total_gib:.1f} GiB does not fit this "
            f"{report.vram_gib:.0f} GiB card; {report.advice}"]


def run(ctx: RunContext) -> StageOutcome:
    started = time.time()
    recipe = ctx.recipe
    folder = ctx.folder("finetune")
    folder.mkdir(parents=True, exist_ok=True)
    writer = ctx.emitter("finetune")
    backend = backend_module(ctx.backend.name)
    with distributed.main_first():  # torchrun: rank 0 builds and copies the miniature first
        model_path = base_model(ctx)
    model, tokenizer = load_model(backend, model_path, recipe, ctx.device)
    data = prepare_data(ctx, tokenizer)
    recipe, auto_notes = resolve_auto_batch(recipe, ctx.device, ctx.backend.name, len(data.train))
    if auto_notes:  # batch_size auto: the number it became is what --resume must use
        ctx.recipe = recipe
        record(ctx.run_dir, recipe)
    evaluation = Evaluation(folder, recipe, backend, model, tokenizer, data)
    main = distributed.is_main()  # several processes: rank 0 evaluates, saves and reports

    def evaluate(step: int) -> None:
        if main:
            guard.evaluate(lambda: evaluation.during(step, writer), step)

    def rebuild(backed_off: Recipe) -> Any:
        return build_trainer(ctx, backed_off, folder, model, tokenizer, data.train, writer,
                             evaluate=evaluate, backend=ctx.backend.name)[0]

    # CUDA out-of-memory back-off (recipes/oom.py): smaller batches, same effective batch
    guard = Backoff(ctx, writer, folder, model, backend, rebuild=rebuild, evaluation=evaluation)
    trainer, changes = build_trainer(ctx, recipe, folder, model, tokenizer, data.train, writer,
                                     evaluate=evaluate, backend=ctx.backend.name)
    settings, changes = effective_settings(recipe, model, trainer, ctx.backend.name, ctx.device,
                                           [*dtype_note(recipe, ctx.device), *auto_notes,
                                            *changes])
    ctx.checkpoint_bytes = checkpoint_bytes(model, trainer.optimizer)
    data.notes[:0] = [*ctx.notes, *remote_code_note(recipe, model_path),
                      *disk_note(folder, ctx.checkpoint_bytes, recipe.save_total_limit)]
    ctx.stop.phase = "the base model's evaluation"
    writer.emit(preflight_event(recipe, data, world_size=distributed.world_size(),
                                settings=settings, changes=changes))
    base_result = guard.evaluate(lambda: evaluation.base(model_path, writer), 0) if main else None
    ctx.stop.phase = "this training step"
    resume = ctx.checkpoint("finetune")
    if ctx.stop.requested and resume is None:  # stopped during the base evaluation
        return StageOutcome(False)
    if recipe.stages and resume is None and evaluation.base_loss is not None:
        # A staged run's curve starts at the model the previous stage left (a fresh LoRA adds
        # nothing yet).
        writer.emit(ev.Eval(step=0, loss=evaluation.base_loss,
                            perplexity=perplexity(evaluation.base_loss),
                            subset_losses=evaluation.base_losses))
    trainer = guard.train(trainer, resume)
    step = trainer.state.global_step
    if ctx.stop.requested and step < trainer.state.max_steps:
        return StageOutcome(False, step=step)
    if not main:
        return StageOutcome(True, step=step)
    if guard.notes:  # what ran after the back-off, read from the live objects again
        recipe = guard.recipe
        settings = effective_settings(recipe, model, trainer, ctx.backend.name, ctx.device, [])[0]
        changes = [*changes, *guard.notes]
    if data.val and step not in evaluation.evaluated:
        guard.evaluate(lambda: evaluation.during(step, writer), step)
    adapter_dir = folder / ADAPTER
    model.save_pretrained(str(adapter_dir))
    tokenizer.save_pretrained(str(adapter_dir))
    if adapter_dir != ctx.run_dir / ADAPTER:
        shutil.copytree(adapter_dir, ctx.run_dir / ADAPTER, dirs_exist_ok=True)
    # A stop that arrived after the last step skips the final evaluation (it can take
    # minutes); `slothlab eval` produces it later.
    tuned = None if ctx.stop.requested else guard.evaluate(
        lambda: evaluation.finetuned(adapter_dir, writer), step)
    losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
    eval_loss, eval_parts = evaluation.last
    items = evaluation.items
    summary = {
        "stage": "finetune", "seconds": time.time() - started, "base_model": str(model_path),
        "adapter_dir": str(ctx.run_dir / ADAPTER), "stage_adapter_dir": str(adapter_dir),
        "steps": step, "train_loss_last": losses[-1] if losses else None,
        "settings": settings, "changes": changes, "backoffs": guard.backoffs,
        "lora": {"r": recipe.lora_r, "alpha": recipe.lora_alpha, "dropout": recipe.lora_dropout,
                 "target_modules": recipe.target_modules, "load_in_4bit": recipe.load_in_4bit},
        "examples": example_counts(data.splits), "task_shares": data.stats["task_shares"],
        "eval_loss": eval_loss, "eval_loss_by_task": eval_parts,
        "base_eval_loss_by_task": evaluation.base_losses,
        "tasks": task_scores(items, base_result, tuned, recipe, evaluation.base_losses,
                             eval_parts) if any(it.task for it in items) else {},
        "table": build_table(recipe, items, base_result, tuned) if tuned else None,
    }
    corpus = ctx.corpus.fingerprint() if ctx.corpus is not None else None
    write_json(folder / DONE, {**summary, "corpus": corpus})
    return StageOutcome(True, step=step, final_loss=summary["train_loss_last"],
                        output=str(ctx.run_dir / ADAPTER))


def example_counts(splits: Any) -> dict[str, dict[str, int]]:
    """Examples per task (\"\" without tasks) in each split."""
    counts: dict[str, dict[str, int]] = {}
    for name in ("train", "val", "test"):
        for ex in getattr(splits, name):
            task = counts.setdefault(ex.meta.get("task", ""), {"train": 0, "val": 0, "test": 0})
            task[name] += 1
    return counts
