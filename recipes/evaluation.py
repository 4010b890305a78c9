"""The evaluation of one fine-tuning stage: base before training, loss and samples during, after.

The eval set is the first ``eval_samples`` examples of the seeded test split, decoded greedily
(recipes/evaluate.py); the base model is the same weights with the adapter disabled. Results are
cached in ``<stage folder>/eval/`` by model + eval set. The validation loss is reported overall
(token-weighted) and per task when the data has tasks.
"""

from __future__ import annotations

import math
import types
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes import metrics as M
from recipes.schema import Recipe


class inference:  # noqa: N801 (a context manager used like a function)
    """Switch a backend's model to inference (Unsloth's fast path) and back to training."""

    def __init__(self, backend: types.ModuleType, model: Any) -> None:
        self.backend, self.model = backend, model

    def __enter__(self) -> None:
        hook = getattr(self.backend, "for_inference", None)
        if hook is not None:
            hook(self.model)

    def __exit__(self, *exc: object) -> None:
        hook = getattr(self.backend, "for_training", None)
        if hook is not None:
            hook(self.model)


def perplexity(loss: float | None) -> float | None:
    return math.exp(min(loss, 50.0)) if loss is not None else None


def subset_losses(model: Any, subsets: dict[str, list[Any]],
                  batch_size: int) -> tuple[float | None, dict[str, float]]:
    """(token-weighted overall loss, loss per named subset) over tokenized items."""
    from recipes.data.types import IGNORE_INDEX
    from recipes.evaluate import mean_loss

    losses, total, count = {}, 0.0, 0
    for name, items in subsets.items():
        loss = mean_loss(model, items, batch_size=batch_size)
        if loss is None:
            continue
        losses[name] = loss
        n = sum(int((t.labels[1:] != IGNORE_INDEX).sum()) for t in items)
        total, count = total + loss * n, count + n
    return (total / count if count else None), losses


class Evaluation:
    """Greedy evaluation of one stage's model: base (adapter off), samples, fine-tuned."""

    def __init__(self, folder: Path, recipe: Recipe, backend: types.ModuleType, model: Any,
                 tokenizer: Any, data: Any) -> None:
        from recipes.data.render import Renderer
        from recipes.evaluate import build_eval_set, label_sets, stop_token_ids

        self.folder, self.recipe, self.backend = folder, recipe, backend
        self.model, self.tokenizer, self.val = model, tokenizer, data.val
        self.renderer = Renderer(tokenizer, recipe)
        self.items = build_eval_set(data.splits.test, self.renderer, recipe.eval_samples)
        self.watch = self.items[:recipe.eval_prompts] or [
            *build_eval_set(data.splits.val, self.renderer, recipe.eval_prompts)]
        self.stop_ids = stop_token_ids(tokenizer, self.renderer)
        every = data.splits.train + data.splits.val + data.splits.test
        self.labels = label_sets(every, recipe.classification_tasks)
        tasks = [ex.meta.get("task", "") for ex in data.splits.val]
        if len(tasks) != len(data.val):  # plain text: held-out documents packed into blocks
            tasks = [""] * len(data.val)
        self.val_groups: dict[str, list[Any]] = {}
        for task, item in zip(tasks, data.val, strict=True):
            self.val_groups.setdefault(task, []).append(item)
        self.base_losses: dict[str, float] = {}
        self.base_loss: float | None = None
        self.last: tuple[float | None, dict[str, float]] = (None, {})
        self.evaluated: set[int] = set()  # steps with an Eval event

    def val_loss(self) -> tuple[float | None, dict[str, float]]:
        """Validation loss, overall and per task (no per-task part when there are no tasks)."""
        loss, parts = subset_losses(self.model, self.val_groups, self.recipe.eval_batch_size)
        return loss, {k: v for k, v in parts.items() if k}

    def _stage(self, stage: str) -> Any:
        from recipes.evaluate import run_stage

        with inference(self.backend, self.model):
            return run_stage(stage, self.model, self.tokenizer, self.renderer, self.items,
                             self.val, self.recipe, batch_size=self.recipe.eval_batch_size,
                             labels=self.labels)

    def base(self, model_path: str | Path, writer: Any) -> Any:
        """The base model's scores (adapter disabled), computed once per run and cached."""
        from recipes.evaluate import cache_key, cached_eval, model_identity

        result = None
        with self.model.disable_adapter():
            if self.items:
                key = cache_key(model_identity(model_path), self.items, self.recipe)
                result, _ = cached_eval(self.folder, "base", key, lambda: self._stage("base"))
            if result is not None and len(self.val_groups) <= 1:  # the same loss, already known
                self.base_loss = result.metrics.get("eval_loss")
            else:
                self.base_loss, self.base_losses = self.val_loss()
        if result is not None:
            writer.emit(ev.Metrics(stage="base", values=result.metrics))
        return result

    def samples(self) -> list[ev.Sample]:
        from recipes.evaluate import generate

        if not self.watch:
            return []
        with inference(self.backend, self.model):
            outputs = generate(self.model, self.tokenizer, [w.prompt for w in self.watch],
                               max_new_tokens=self.recipe.max_new_tokens, stop_ids=self.stop_ids,
                               batch_size=self.recipe.eval_batch_size)
        return [ev.Sample(prompt=w.question, reference=w.reference, output=o)
                for w, o in zip(self.watch, outputs, strict=True)]

    def during(self, step: int, writer: Any) -> None:
        """The Eval event of ``step``: validation loss (overall and per task) and samples."""
        loss, parts = self.last = self.val_loss()
        self.evaluated.add(step)
        writer.emit(ev.Eval(step=step, loss=loss, perplexity=perplexity(loss),
                            samples=self.samples(), subset_losses=parts))

    def finetuned(self, adapter_dir: Path, writer: Any) -> Any:
        """The trained adapter's scores (cached by the adapter's bytes), or None without items."""
        if not self.items:
            return None
        from recipes.evaluate import adapter_identity, cache_key, cached_eval

        key = cache_key(adapter_identity(adapter_dir), self.items, self.recipe)
        result, _ = cached_eval(self.folder, "finetuned", key, lambda: self._stage("finetuned"))
        writer.emit(ev.Metrics(stage="finetuned", values=result.metrics))
        return result


def task_scores(items: list[Any], base: Any, tuned: Any, recipe: Recipe,
                base_losses: dict[str, float], tuned_losses: dict[str, float]) -> dict[str, Any]:
    """Per task: eval loss and the recipe's answer metrics, base (adapter off) and fine-tuned."""
    out: dict[str, Any] = {}
    for task in sorted({it.task for it in items} | set(base_losses) | set(tuned_losses)):
        idx = [i for i, it in enumerate(items) if it.task == task]
        rows: dict[str, dict[str, Any]] = {
            "eval_loss": {"base": base_losses.get(task), "finetuned": tuned_losses.get(task)}}
        if idx and tuned is not None:
            refs = [items[i].reference for i in idx]
            score = (M.classification if task in recipe.classification_tasks
                     else M.score_corpus)
            scored = {"finetuned": score([tuned.outputs[i] for i in idx], refs)}
            if base is not None:
                scored["base"] = score([base.outputs[i] for i in idx], refs)
            for name in (m for m in recipe.metrics if m in scored["finetuned"]):
                rows[name] = {stage: scored[stage][name] if stage in scored else None
                              for stage in ("base", "finetuned")}
        for row in rows.values():
            row.update(M.change(row["base"], row["finetuned"]))
        out[task] = {"test_examples": len(idx), "metrics": rows}
    return out


def evaluate_run(run_dir: Path, *, base: bool) -> dict[str, Any]:
    """`slothlab eval`: load a finished run's base + adapter, evaluate (cached), rewrite the report."""
    import json

    from recipes.errors import RunDirError
    from recipes.rundir import ADAPTER, DONE, RECIPE_FILE, check_run_dir, read_done, write_json
    from recipes.schema import load_recipe

    check_run_dir(run_dir)
    recipe = load_recipe(run_dir / RECIPE_FILE)
    if recipe.stages:
        raise RunDirError("staged runs (gemma3-scratch) are evaluated by their own stages",
                          where=str(run_dir), fix=f"see {run_dir / 'report.md'}")
    if not (run_dir / ADAPTER / "adapter_config.json").exists():
        raise RunDirError("this run has no adapter yet (it did not finish)", where=str(run_dir),
                          fix=f"finish it first: slothlab --resume {run_dir}")
    from recipes.data.prepare import load_examples, prepare
    from recipes.evaluate import (
        EvalResult,
        adapter_identity,
        build_eval_set,
        cache_key,
        cached_eval,
        label_sets,
        model_identity,
        run_stage,
    )
    from recipes.host import PROJECT_ROOT
    from recipes.report import build_table, write_report
    from recipes.schema import data_source
    from recipes.trained import load_trained

    trained = load_trained(run_dir)  # the base as training loaded it, and the adapter
    model, tokenizer, renderer = trained.model, trained.tokenizer, trained.renderer
    model_path, adapter_dir = trained.base_path, trained.adapter_dir
    source = data_source(recipe)
    loaded = load_examples(recipe, source, base_dirs=[PROJECT_ROOT])
    data = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                   source=source)
    items = build_eval_set(data.splits.test, renderer, recipe.eval_samples)
    if not items:
        raise RunDirError("the recipe has no held-out test examples to evaluate",
                          where=str(run_dir / RECIPE_FILE), fix="set test_fraction > 0")
    labels = label_sets(loaded.examples, recipe.classification_tasks)

    def evaluate(stage: str) -> Any:
        return run_stage(stage, model, tokenizer, renderer, items, data.val, recipe,
                         labels=labels)

    base_result = None
    if base:
        key = cache_key(model_identity(model_path), items, recipe)
        with model.disable_adapter():
            base_result, _ = cached_eval(run_dir, "base", key, lambda: evaluate("base"))
    else:
        found = sorted((run_dir / "eval").glob("base-*.json"), key=lambda p: p.stat().st_mtime)
        if found:
            base_result = EvalResult(**json.loads(found[-1].read_text(encoding="utf-8")))
    key = cache_key(adapter_identity(adapter_dir), items, recipe)
    tuned, _ = cached_eval(run_dir, "finetuned", key, lambda: evaluate("finetuned"))
    summary = read_done(run_dir) or {"stage": "finetune"}  # runs from before done.json
    summary["table"] = build_table(recipe, items, base_result, tuned)
    write_json(run_dir / DONE, summary)
    return write_report(run_dir, recipe)
