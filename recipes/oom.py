"""When the card is too small: CUDA out-of-memory back-off, and ``batch_size: auto``.

    guard = Backoff(ctx, writer, folder, model, backend, rebuild=..., evaluation=...)
    trainer = guard.train(trainer, resume)            # instead of trainer.train(...)
    guard.evaluate(lambda: evaluation.during(step, writer), step)

On a CUDA out-of-memory error in a training step (``oom_backoff: true``, the default) the run
frees the trainer and its optimizer, emits an ``oom`` event saying what changes, and continues
from the last checkpoint (or from the start, with the starting adapter weights and random
state) with the **same effective batch and the same data order**: ``batch_size`` is divided by
its smallest prime factor (8 → 4 → 2 → 1) and ``gradient_accumulation_steps`` multiplied by it;
at batch 1 gradient checkpointing is turned on. An out-of-memory error in an evaluation halves
``eval_batch_size`` and evaluates again. ``max_seq_length`` and the data never change: when
nothing is left to change, the run fails with the VRAM estimate's advice.

Same data order: transformers 5.17 draws each epoch's order from a sampler seeded with
``data_seed + epoch`` (accelerate's SeedableRandomSampler), independent of the batch size, and
cuts it into consecutive micro-batches; optimizer step k of an epoch takes micro-batches
[k·g, (k+1)·g), i.e. examples [k·b·g, (k+1)·b·g) of the permutation, and a resumed run skips
k·g micro-batches. With b·g unchanged, every optimizer step sees the same examples, and the
loss, normalised by the step's token count (``num_items_in_batch``), is the same sum.

Every change is written to the run's recipe.yaml (``--resume`` continues with the settings that
ran) and to done.json's ``changes`` ("backed off: batch 4→2, accumulation 8→16 at step 120"),
which report.md shows. Back-off is single-process: under torchrun an out-of-memory error fails
the run as before (the other ranks cannot follow one rank's restart).

Test-only fault hook: ``SLOTHLAB_TEST_OOM="train@5,eval@6,train@1x3"`` raises
``torch.OutOfMemoryError`` before the optimizer update of training step 5 (after its forward and
backward passes), in the evaluation of step 6 (0 = the base model's, before training), and three
times at step 1 (each retry counts). Never set it outside tests.
"""

from __future__ import annotations

import gc
import os
import random
from dataclasses import replace
from pathlib import Path
from typing import Any

from recipes import distributed
from recipes import events as ev
from recipes.errors import SlothlabError
from recipes.rundir import RECIPE_FILE, latest_checkpoint
from recipes.schema import Recipe, dump_recipe

FAULT_ENV = "SLOTHLAB_TEST_OOM"


class OutOfMemory(SlothlabError):
    """CUDA ran out of memory and nothing is left to back off."""


# -- the policy ---------------------------------------------------------------------------------


def smaller_batch(batch: int) -> int:
    """``batch`` divided by its smallest prime factor (8 → 4, 6 → 3, 5 → 1): the effective batch
    stays a whole number of micro-batches."""
    factor = next(f for f in range(2, batch + 1) if batch % f == 0)
    return batch // factor


def next_train_change(recipe: Recipe) -> dict[str, list[Any]] | None:
    """The next back-off after a training OOM (field -> [before, after]), or None."""
    if recipe.batch_size > 1:
        smaller = smaller_batch(recipe.batch_size)
        accumulation = recipe.gradient_accumulation_steps * (recipe.batch_size // smaller)
        return {"batch_size": [recipe.batch_size, smaller],
                "gradient_accumulation_steps": [recipe.gradient_accumulation_steps, accumulation]}
    if not recipe.gradient_checkpointing:
        return {"gradient_checkpointing": [False, True]}
    return None


def next_eval_change(recipe: Recipe) -> dict[str, list[Any]] | None:
    """The next back-off after an evaluation OOM, or None."""
    if recipe.eval_batch_size > 1:
        return {"eval_batch_size": [recipe.eval_batch_size, recipe.eval_batch_size // 2]}
    return None


def describe(changes: dict[str, list[Any]], recipe: Recipe) -> str:
    """'batch 4→2, accumulation 8→16 (effective batch 32)', 'gradient checkpointing off→on'."""
    words = []
    if "batch_size" in changes:
        (b0, b1), (g0, g1) = changes["batch_size"], changes["gradient_accumulation_steps"]
        words.append(f"batch {b0}→{b1}, accumulation {g0}→{g1} (effective batch {b1 * g1})")
    if "gradient_checkpointing" in changes:
        words.append("gradient checkpointing off→on")
    if "eval_batch_size" in changes:
        e0, e1 = changes["eval_batch_size"]
        words.append(f"eval batch {e0}→{e1}")
    return ", ".join(words)


def is_oom(exc: BaseException) -> bool:
    import torch

    return isinstance(exc, torch.OutOfMemoryError) or (
        isinstance(exc, RuntimeError) and "out of memory" in str(exc).lower())


def free_memory() -> None:
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def fit_advice(recipe: Recipe, backend: str, device: str) -> str:
    """What the VRAM estimate suggests for this recipe on this card, plus what always helps."""
    from kernels_check.fit import detect_vram_gib, estimate

    report = estimate(recipe, detect_vram_gib() if device == "cuda" else None, backend=backend)
    always = ("lower max_seq_length (the back-off never changes it) or use a smaller model; "
              "check that no other process holds memory on the card (nvidia-smi)")
    return f"{report.advice}; or {always}" if report.advice else always


def record(run_dir: Path, recipe: Recipe) -> None:
    """The run's recipe.yaml says the settings that run now (rank 0 writes it)."""
    if distributed.is_main():
        partial = run_dir / (RECIPE_FILE + ".partial")
        partial.write_text(dump_recipe(recipe), encoding="utf-8")
        partial.replace(run_dir / RECIPE_FILE)


# -- batch_size: auto ---------------------------------------------------------------------------


def resolve_auto_batch(recipe: Recipe, device: str, backend: str,
                       n_train: int) -> tuple[Recipe, list[str]]:
    """``batch_size: auto`` (0) made a number, and a note saying why; other recipes unchanged."""
    if recipe.batch_size != 0:
        return recipe, []
    from kernels_check.fit import AUTO_BATCH_FALLBACK, auto_batch_size, detect_vram_gib, estimate

    vram = detect_vram_gib() if device == "cuda" else None
    if vram is None:
        found, why = AUTO_BATCH_FALLBACK, "no GPU to fit against: the default"
    elif estimate(replace(recipe, batch_size=1), vram, backend=backend).verdict == "unknown":
        found, why = AUTO_BATCH_FALLBACK, "the VRAM estimate does not know this architecture"
    else:
        found = auto_batch_size(recipe, vram, backend=backend)
        why = (f"the largest whose estimate stays under 90 % of this {vram:.0f} GiB card"
               if found else "even 1 is over 90 % of the card by the estimate")
        found = max(found, 1)
    if found > max(n_train, 1):
        found, why = max(n_train, 1), f"{why}, capped at the {n_train} training examples"
    found = distributed.agree_min(found)
    return replace(recipe, batch_size=found), [f"batch_size auto: {found} ({why})"]


# -- the test-only fault hook -------------------------------------------------------------------


class Faults:
    """Out-of-memory errors a test asks for through SLOTHLAB_TEST_OOM (see the module docstring)."""

    def __init__(self, spec: str) -> None:
        self.left: dict[tuple[str, int], int] = {}
        for part in filter(None, (p.strip() for p in spec.split(","))):
            phase, _, rest = part.partition("@")
            step, _, times = rest.partition("x")
            self.left[(phase, int(step))] = int(times or 1)

    @classmethod
    def from_env(cls) -> Faults:
        return cls(os.environ.get(FAULT_ENV, ""))

    def fire(self, phase: str, step: int) -> None:
        if self.left.get((phase, step), 0) > 0:
            self.left[(phase, step)] -= 1
            import torch

            raise torch.OutOfMemoryError(f"CUDA out of memory ({FAULT_ENV}: {phase} at step "
                                         f"{step}, a test fault)")

    def callback(self) -> Any:
        from transformers import TrainerCallback

        faults = self

        class TrainFault(TrainerCallback):
            def on_pre_optimizer_step(self, args, state, control, **kwargs):
                faults.fire("train", state.global_step + 1)

        return TrainFault()


# -- the guard ----------------------------------------------------------------------------------


class StartingPoint:
    """The adapter weights and random state a run starts from, to start again from them."""

    def __init__(self, model: Any) -> None:
        import numpy as np
        import torch

        self.params = {n: p.detach().to("cpu", copy=True)
                       for n, p in model.named_parameters() if p.requires_grad}
        self.rng = (random.getstate(), np.random.get_state(), torch.get_rng_state(),
                    torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None)

    def restore(self, model: Any) -> None:
        import numpy as np
        import torch

        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in self.params:
                    param.copy_(self.params[name])
        py, np_state, cpu, cuda = self.rng
        random.setstate(py)
        np.random.set_state(np_state)
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)


class Backoff:
    """Runs a stage's training and evaluations, backing off on CUDA out-of-memory errors.

    ``rebuild(recipe)`` builds the stage's trainer for the backed-off settings; ``evaluation``
    (recipes.evaluation.Evaluation) reads ``eval_batch_size`` from its ``recipe``.
    """

    def __init__(self, ctx: Any, writer: Any, folder: Path, model: Any, backend: Any, *,
                 rebuild: Any, evaluation: Any = None) -> None:
        self.ctx, self.writer, self.folder, self.model = ctx, writer, folder, model
        self.backend, self.rebuild, self.evaluation = backend, rebuild, evaluation
        self.recipe: Recipe = ctx.recipe
        self.faults = Faults.from_env()
        self.notes: list[str] = []  # "backed off: ..." lines for done.json's changes
        self.backoffs: list[dict[str, Any]] = []

    @property
    def enabled(self) -> bool:
        return self.recipe.oom_backoff and not distributed.launched()

    def adopt(self, trainer: Any) -> Any:
        if self.faults.left:
            trainer.add_callback(self.faults.callback())
        return trainer

    def train(self, trainer: Any, resume: Path | None) -> Any:
        """``trainer.train`` from ``resume``, again with smaller settings after each OOM; returns
        the trainer that finished."""
        start = StartingPoint(self.model) if resume is None and self.enabled else None
        self.adopt(trainer)
        while True:
            try:
                trainer.train(resume_from_checkpoint=str(resume) if resume else None)
                return trainer
            except Exception as exc:
                if not (self.enabled and is_oom(exc)):
                    raise
                step, reason = trainer.state.global_step + 1, _first_line(exc)
            # Out of the except block: the traceback and the activations it holds are gone.
            changes = next_train_change(self.recipe)
            if changes is None:
                raise self._exhausted("training", step, reason)
            trainer.accelerator.free_memory()
            self.model.zero_grad(set_to_none=True)
            del trainer
            free_memory()
            resume = latest_checkpoint(self.folder)
            if resume is None and start is not None:
                start.restore(self.model)
            self._apply(changes, "train", step, resume)
            if "gradient_checkpointing" in changes:
                self.backend.enable_gradient_checkpointing(self.model)
            trainer = self.adopt(self.rebuild(self.recipe))

    def evaluate(self, run: Any, step: int) -> Any:
        """``run()`` (an evaluation at ``step``), again with a smaller eval batch after an OOM."""
        while True:
            try:
                self.faults.fire("eval", step)
                return run()
            except Exception as exc:
                if not (self.enabled and is_oom(exc)):
                    raise
                reason = _first_line(exc)
            changes = next_eval_change(self.recipe)
            if changes is None:
                raise self._exhausted("evaluation", step, reason)
            free_memory()
            self._apply(changes, "eval", step, None)

    def _apply(self, changes: dict[str, list[Any]], phase: str, step: int,
               resume: Path | None) -> None:
        self.recipe = replace(self.recipe, **{k: v[1] for k, v in changes.items()})
        self.ctx.recipe = self.recipe
        if self.evaluation is not None:
            self.evaluation.recipe = self.recipe
        record(self.ctx.run_dir, self.recipe)
        message = describe(changes, self.recipe)
        resume_step = int(resume.name.rsplit("-", 1)[1]) if resume else 0
        where = (("continuing from checkpoint " + str(resume_step)) if resume
                 else "starting training again") if phase == "train" else "evaluating again"
        self.writer.emit(ev.Oom(step=step, phase=phase, changes=changes,
                                message=f"{message}; {where}", resume_step=resume_step))
        self.notes.append(f"backed off: {message} at step {step} (CUDA out of memory in "
                          f"{'training' if phase == 'train' else 'an evaluation'}; {where})")
        self.backoffs.append({"step": step, "phase": phase, "changes": changes,
                              "resume_step": resume_step})

    def _exhausted(self, phase: str, step: int, reason: str) -> OutOfMemory:
        r = self.recipe
        state = (f"batch_size {r.batch_size}, gradient checkpointing "
                 f"{'on' if r.gradient_checkpointing else 'off'}" if phase == "training"
                 else f"eval_batch_size {r.eval_batch_size}")
        fix = fit_advice(r, self.ctx.backend.name, self.ctx.device)
        if phase == "evaluation":
            fix = f"lower max_new_tokens or eval_samples; {fix}"
        return OutOfMemory(f"CUDA ran out of memory in {phase} at step {step} with {state}: "
                           f"nothing left to back off ({reason})",
                           where="batch_size" if phase == "training" else "eval_batch_size",
                           fix=fix)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else type(exc).__name__
