"""TRL's SFTTrainer as every stage uses it: arguments, callbacks that emit events, the CPU loss.

    from recipes.trainer import build_trainer
    trainer = build_trainer(ctx, stage_recipe, out_dir, model, tokenizer, items, writer,
                            evaluate=lambda step: ...)
    trainer.train(resume_from_checkpoint=...)

The callbacks turn the trainer's logs and saves into events, honour the run's stop flag (the
step ends, a checkpoint is saved) and call the stage's own evaluation every ``eval_steps``,
right after that step's loss is logged.
"""

from __future__ import annotations

import contextlib
import io
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.errors import SlothlabError
from recipes.host import memory_now
from recipes.rundir import CHECKPOINTS
from recipes.schema import Recipe


def training_args(recipe: Recipe, out_dir: Path, device: str) -> Any:
    from trl import SFTConfig

    from recipes.backends.reference import resolve_dtype

    dtype = str(resolve_dtype(recipe.compute_dtype, device)).removeprefix("torch.")
    # Unsloth's patched SFTConfig prints that it swaps adamw_8bit for adamw_torch_fused; the
    # swap is undone (restore_optimizer) and reported in the preflight, so the print would mislead.
    settings = dict(
        output_dir=str(out_dir / CHECKPOINTS),
        per_device_train_batch_size=recipe.batch_size,
        gradient_accumulation_steps=recipe.gradient_accumulation_steps,
        num_train_epochs=recipe.epochs,
        max_steps=recipe.max_steps if recipe.max_steps > 0 else -1,
        learning_rate=recipe.learning_rate,
        lr_scheduler_type=recipe.lr_scheduler,
        warmup_steps=recipe.warmup_steps,
        weight_decay=recipe.weight_decay,
        optim=recipe.optimizer,
        max_grad_norm=recipe.max_grad_norm,
        gradient_checkpointing=False,  # the backend enabled it on the model already
        logging_steps=recipe.logging_steps,
        logging_first_step=True,  # the first loss (and the progress bar) without a wait
        logging_nan_inf_filter=False,  # a NaN loss is shown, never averaged away
        eval_strategy="no",  # stages evaluate themselves (EvalEvery), with greedy samples
        save_strategy="steps",
        save_steps=recipe.save_steps,
        save_total_limit=recipe.save_total_limit or None,
        seed=recipe.seed,
        data_seed=recipe.seed,
        bf16=device == "cuda" and dtype == "bfloat16",
        fp16=device == "cuda" and dtype == "float16",
        use_cpu=device != "cuda",
        report_to="none",
        disable_tqdm=True,
        max_length=recipe.max_seq_length,
        dataset_kwargs={"skip_prepare_dataset": True},
        include_num_input_tokens_seen="non_padding",
        dataloader_num_workers=0,
        save_only_model=False,
        ddp_find_unused_parameters=False,  # DDP (torchrun): every LoRA weight takes part
    )
    with contextlib.redirect_stdout(io.StringIO()):
        return SFTConfig(**settings)


def trainer_class(device: str, backend: str = "reference") -> type:
    """TRL's SFTTrainer; on a CPU, with the model's own loss instead of TRL's Triton loss head.

    TRL 1.15 computes every SFT loss through a fused LM-head Triton kernel, and Triton has no
    CPU driver ("0 active drivers"). The model's own causal-LM cross-entropy is the same loss
    (mean negative log-likelihood over tokens whose label is not -100), so on a CPU the trainer
    calls it instead. Everything else (data collation, optimizer, schedule, checkpoints) stays TRL's.
    Unsloth's CPU backend replaces ``trl.SFTTrainer`` with its own subclass, which routes the
    loss through its chunked cross-entropy: the unsloth backend keeps that path.
    """
    from trl import SFTTrainer

    if device == "cuda" or backend == "unsloth":
        return SFTTrainer
    from transformers import Trainer

    class CPUSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return CPUSFTTrainer


def restore_optimizer(trainer: Any, asked: str) -> list[str]:
    """Put back the optimizer the recipe asked for when a library rewrote it, and say so.

    Importing unsloth patches SFTConfig so that every 8-bit or paged optimizer becomes
    adamw_torch_fused (and adamw_torch becomes fused on a CPU). bitsandbytes' AdamW8bit steps
    on a CPU too, so the recipe's choice is restored rather than swapped silently.
    """
    from transformers.training_args import OptimizerNames

    now = getattr(trainer.args.optim, "value", trainer.args.optim)
    if now == asked:
        return []
    trainer.args.optim = OptimizerNames(asked)
    return [f"optimizer: a library rewrote optim {asked} to {now} (Unsloth's import does); "
            f"set back to {asked}"]


def adapters_in_fp32(model: Any) -> list[str]:
    """Train the LoRA weights in fp32, as peft creates them; say so when they had been cast.

    TRL 1.15's SFTTrainer casts the adapters of a quantised model to bf16 (the QLoRA paper's
    storage type), but a checkpoint resumed through peft comes back in fp32, so a resumed run
    drifted from an uninterrupted one (0.3 % by 15 steps after the resume; with Unsloth's CPU
    backend 0.41 %). fp32 adapters cost a few MiB, keep small updates that bf16 rounds away,
    and are what the VRAM estimate counts; on a GPU, autocast still computes them in the
    compute dtype.
    """
    import torch

    cast = {str(p.dtype).removeprefix("torch.") for p in model.parameters()
            if p.requires_grad and p.dtype in (torch.bfloat16, torch.float16)}
    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()
    return [f"LoRA weights: cast to {', '.join(sorted(cast))} by TRL; trained in float32"] if cast else []


def event_callback(writer: Any, device: str, stop: Any, stop_at_step: int | None,
                   spike_factor: float = 0.0) -> Any:
    """Turns the trainer's logs and saves into Step / Checkpoint events; honours the stop flag;
    stops a run whose gradients stop being finite before the optimizer applies them (so no
    diverged weights are ever saved), or whose loss jumps past ``spike_factor`` times the
    median of the losses logged so far."""
    import statistics

    from transformers import TrainerCallback

    from recipes.rundir import mark_complete

    class EventCallback(TrainerCallback):
        def on_train_begin(self, args, state, control, **kwargs):
            self.last_time = time.perf_counter()
            self.last_tokens = state.num_input_tokens_seen
            self.losses: list[float] = []

        def on_pre_optimizer_step(self, args, state, control, model=None, **kwargs):
            bad = non_finite_gradients(model)
            if bad:
                raise Diverged(state.global_step + 1, f"{bad} has NaN/Inf gradients")

        def on_step_end(self, args, state, control, **kwargs):
            if stop_at_step is not None and state.global_step >= stop_at_step:
                stop.requested = True
            if stop.requested:
                control.should_save = True
                control.should_training_stop = True
            if stop.requested or state.global_step >= state.max_steps:
                control.should_log = True  # the last step's loss, off the logging_steps grid

        def on_log(self, args, state, control, logs=None, **kwargs):
            logs = logs or {}
            if "loss" not in logs:
                return
            now = time.perf_counter()
            tokens = state.num_input_tokens_seen
            rate = (tokens - self.last_tokens) / max(now - self.last_time, 1e-9)
            self.last_time, self.last_tokens = now, tokens
            loss, grad_norm = float(logs["loss"]), logs.get("grad_norm")
            writer.emit(ev.Step(
                step=state.global_step, total_steps=state.max_steps, epoch=float(state.epoch or 0),
                loss=loss, learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=float(grad_norm) if grad_norm is not None else None,
                tokens_per_second=rate, memory=memory_now(device)))
            detail = f"loss {loss:.4g}, grad norm {float(grad_norm or 0):.3g}"
            if not math.isfinite(loss):
                raise Diverged(state.global_step, detail)
            if spike_factor and len(self.losses) >= 3:
                typical = statistics.median(self.losses)
                if loss > spike_factor * typical:
                    raise Diverged(state.global_step, f"{detail}: more than loss_spike_factor="
                                                      f"{spike_factor:g} times the median {typical:.4g}")
            self.losses.append(loss)

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            import torch.distributed as dist

            if dist.is_available() and dist.is_initialized():
                dist.barrier()  # every rank has written its RNG state before the marker lists it
            if path.is_dir() and args.should_save:
                mark_complete(path)
            writer.emit(ev.Checkpoint(step=state.global_step, path=str(path)))

    return EventCallback()


class Diverged(SlothlabError):
    """Training stopped at a step whose loss or gradients were not finite (or spiked)."""

    exit_code = 1

    def __init__(self, step: int, detail: str) -> None:
        self.step = step
        super().__init__(f"diverged at step {step} ({detail})", where="training",
                         fix="lower learning_rate, add warmup_steps or set max_grad_norm (e.g. 1.0); "
                             "nothing was saved from the diverged weights")


def non_finite_gradients(model: Any) -> str:
    """The first trainable parameter whose gradient holds NaN or Inf ('' when all are finite)."""
    import torch

    if model is None:
        return ""
    named = [(n, p.grad) for n, p in model.named_parameters() if p.grad is not None]
    if not named:
        return ""
    finite = torch.stack([torch.isfinite(g).all() for _, g in named])
    if bool(finite.all()):
        return ""
    return next(n for (n, _), ok in zip(named, finite.tolist(), strict=True) if not ok)


def eval_every(every: int, stop: Any, evaluate: Callable[[int], None]) -> Any:
    """Runs ``evaluate(step)`` every ``every`` steps, right after that step's Step event."""
    from transformers import TrainerCallback

    class EvalEvery(TrainerCallback):
        def __init__(self) -> None:
            self.done: set[int] = set()

        def on_step_end(self, args, state, control, **kwargs):
            if every and state.global_step % every == 0 and not stop.requested:
                control.should_log = True  # the step's loss is logged before its eval

        def on_log(self, args, state, control, logs=None, **kwargs):
            step = state.global_step
            if (every and step % every == 0 and "loss" in (logs or {}) and step not in self.done
                    and not stop.requested):
                self.done.add(step)
                evaluate(step)

    return EvalEvery()


def as_dataset(items: list) -> Any:
    """Tokenized examples (or packed blocks) as the dataset TRL's collator pads."""
    from datasets import Dataset

    return Dataset.from_dict({"input_ids": [t.input_ids for t in items],
                              "labels": [t.labels for t in items]})


def build_trainer(ctx: Any, recipe: Recipe, out_dir: Path, model: Any, tokenizer: Any,
                  items: list, writer: Any, *, evaluate: Callable[[int], None] | None,
                  backend: str = "reference") -> tuple[Any, list[str]]:
    """The trainer of one stage (``recipe`` may carry that stage's own learning rate and steps),
    its optimizer already built, and what it changed from the recipe.

    The optimizer is created now, not at the first step, so the preflight can name the class
    that will really step (a resumed run loads its saved state into it).
    """
    from transformers import PrinterCallback

    from recipes.distributed import stop_callbacks

    callbacks = [*stop_callbacks(ctx.stop),  # several processes: agree on a stop first
                 event_callback(writer, ctx.device, ctx.stop, ctx.options.stop_at_step,
                                recipe.loss_spike_factor)]
    if evaluate is not None:
        callbacks.append(eval_every(recipe.eval_steps, ctx.stop, evaluate))
    trainer = trainer_class(ctx.device, backend)(
        model=model, args=training_args(recipe, out_dir, ctx.device),
        train_dataset=as_dataset(items), processing_class=tokenizer, callbacks=callbacks)
    trainer.remove_callback(PrinterCallback)  # our events replace its printed dicts
    changes = [*restore_optimizer(trainer, recipe.optimizer), *adapters_in_fp32(model)]
    trainer.create_optimizer()
    return trainer, changes
