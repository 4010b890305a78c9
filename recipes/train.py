"""One fine-tuning run, top to bottom: the recipe script every front end starts.

    slothlab --recipe demo            # headless, renders the events with Rich
    slothlab --recipe demo --json     # the raw event stream (what the TUI reads)

Order matters: the backend is chosen (and unsloth imported, when chosen) before anything
imports transformers, trl or peft. Every outcome ends the event stream with ``finished``,
``stopped`` (Ctrl-C / SIGINT: the step ends, a checkpoint is saved, ``--resume`` continues)
or ``failed`` (the error and what to do).
"""

from __future__ import annotations

import math
import os
import shutil
import signal
import time
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from recipes import events as ev
from recipes.errors import RunDirError, SlothlabError
from recipes.rundir import (
    ADAPTER,
    BASE,
    CHECKPOINTS,
    EVENTS_FILE,
    RECIPE_FILE,
    latest_checkpoint,
    new_run_dir,
)
from recipes.schema import Recipe, data_fields, dump_recipe

PROJECT_ROOT = Path(__file__).resolve().parents[1]


@dataclass
class RunOptions:
    backend: str = "auto"
    runs_root: Path = Path("runs")
    echo: TextIO | None = None  # also write events as JSON lines here (--json: stdout)
    resume_dir: Path | None = None
    listeners: list[Callable[[ev.Event], None]] = field(default_factory=list)
    stop_at_step: int | None = None  # tests: behave as if Ctrl-C arrived during this step
    cache_dir: Path | None = None


class StopFlag:
    """Set by SIGINT (first Ctrl-C); the trainer checks it at the end of each step."""

    def __init__(self) -> None:
        self.requested = False

    def install(self) -> Callable[[], None]:
        def handler(signum: int, frame: Any) -> None:
            if self.requested:  # a second Ctrl-C means now
                raise KeyboardInterrupt
            self.requested = True

        previous = signal.signal(signal.SIGINT, handler)
        return lambda: signal.signal(signal.SIGINT, previous)


def cache_root(options: RunOptions) -> Path:
    if options.cache_dir:
        return options.cache_dir
    base = os.environ.get("SLOTHLAB_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache")), "slothlab")
    return Path(base)


def memory_now(device: str) -> ev.Memory:
    if device == "cuda":
        import torch

        mb = 1024 * 1024
        return ev.Memory("vram", torch.cuda.memory_allocated() / mb,
                         torch.cuda.max_memory_reserved() / mb,
                         torch.cuda.get_device_properties(0).total_memory / mb)
    import resource

    import psutil

    rss = psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux
    return ev.Memory("rss", rss, max(rss, peak), psutil.virtual_memory().total / 2**20)


def describe_device(device: str) -> str:
    if device == "cuda":
        import torch

        props = torch.cuda.get_device_properties(0)
        return f"{props.name} ({props.total_memory / 2**30:.1f} GiB, sm_{props.major}{props.minor})"
    import psutil

    return f"CPU ({os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM)"


def data_source(recipe: Recipe) -> str:
    """Tiny mode reads the recipe's sample (``--set dataset=...`` sets it too)."""
    main, _ = data_fields(recipe.tiny, recipe.sample_dataset, recipe.sample_extra_datasets)
    return getattr(recipe, main)


def check_sources(recipe: Recipe) -> None:
    """Fail now, with advice, if the model or dataset needs a hub that cannot be reached."""
    from recipes.data.sources import resolve_path
    from recipes.hub import ensure_available

    if not recipe.tiny and resolve_path(recipe.model) is None:
        ensure_available(recipe.model, kind="model", field="model",
                         local_hint="/path/to/model_folder")
    source = data_source(recipe)
    if resolve_path(source, base_dirs=[PROJECT_ROOT]) is None:
        ensure_available(source, kind="dataset", field="dataset",
                         local_hint="/path/to/data.jsonl", tiny=recipe.tiny)


def train_device() -> str:
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def quiet_libraries() -> None:
    import logging
    import warnings

    logging.getLogger("torch.utils._pytree").setLevel(logging.ERROR)
    # bitsandbytes suggests a hub-downloaded CPU kernel; the built-in one works offline.
    logging.getLogger("bitsandbytes").setLevel(logging.ERROR)
    warnings.filterwarnings("ignore", category=UserWarning)
    warnings.filterwarnings("ignore", category=FutureWarning)
    try:
        import datasets
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.logging.disable_progress_bar()
        datasets.disable_progress_bars()
    except ImportError:
        pass


def _tiny_model_folder(recipe: Recipe, examples: list, cache: Path, run_dir: Path) -> Path:
    """Build (or reuse) the miniature and copy it into the run, so the adapter is self-contained."""
    from recipes.tiny import build_tiny_model, tokenizer_corpus

    folder = build_tiny_model(recipe, tokenizer_corpus(recipe, examples), cache)
    target = run_dir / BASE
    if not target.exists():
        shutil.copytree(folder, target)
    return target


def _training_args(recipe: Recipe, run_dir: Path, device: str, has_val: bool) -> Any:
    from trl import SFTConfig

    from recipes.backends.reference import resolve_dtype

    dtype = str(resolve_dtype(recipe.compute_dtype, device)).removeprefix("torch.")
    eval_every = recipe.eval_steps if (has_val and recipe.eval_steps) else 0
    return SFTConfig(
        output_dir=str(run_dir / CHECKPOINTS),
        per_device_train_batch_size=recipe.batch_size,
        per_device_eval_batch_size=recipe.batch_size,
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
        eval_strategy="steps" if eval_every else "no",
        eval_steps=eval_every or None,
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
    )


class Evaluation:
    """Greedy evaluation of one run: base before training, samples during, fine-tuned after."""

    def __init__(self, run_dir: Path, recipe: Recipe, backend: types.ModuleType, model: Any,
                 tokenizer: Any, data: Any) -> None:
        from recipes.data.render import Renderer
        from recipes.evaluate import build_eval_set, label_sets, stop_token_ids

        self.run_dir, self.recipe, self.backend = run_dir, recipe, backend
        self.model, self.tokenizer, self.val = model, tokenizer, data.val
        self.renderer = Renderer(tokenizer, recipe)
        self.items = build_eval_set(data.splits.test, self.renderer, recipe.eval_samples)
        self.watch = self.items[:recipe.eval_prompts] or [
            *build_eval_set(data.splits.val, self.renderer, recipe.eval_prompts)]
        self.stop_ids = stop_token_ids(tokenizer, self.renderer)
        every = data.splits.train + data.splits.val + data.splits.test
        self.labels = label_sets(every, recipe.classification_tasks)

    def _stage(self, stage: str) -> Any:
        from recipes.evaluate import run_stage

        with inference(self.backend, self.model):
            return run_stage(stage, self.model, self.tokenizer, self.renderer, self.items,
                             self.val, self.recipe, batch_size=self.recipe.eval_batch_size,
                             labels=self.labels)

    def base(self, model_path: str | Path, writer: ev.EventWriter) -> Any:
        """The base model's scores (adapter disabled), computed once per run and cached."""
        if not self.items:
            return None
        from recipes.evaluate import cache_key, cached_eval, model_identity

        key = cache_key(model_identity(model_path), self.items, self.recipe)
        with self.model.disable_adapter():
            result, _ = cached_eval(self.run_dir, "base", key, lambda: self._stage("base"))
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

    def finetuned(self, adapter_dir: Path, base_result: Any, writer: ev.EventWriter) -> str | None:
        """Score the trained adapter, write report.json/.md and loss.png; the report's path."""
        if not self.items:
            return None
        from recipes.evaluate import adapter_identity, cache_key, cached_eval
        from recipes.report import write_report

        key = cache_key(adapter_identity(adapter_dir), self.items, self.recipe)
        result, _ = cached_eval(self.run_dir, "finetuned", key, lambda: self._stage("finetuned"))
        writer.emit(ev.Metrics(stage="finetuned", values=result.metrics))
        write_report(self.run_dir, self.recipe, self.items, base_result, result)
        return str(self.run_dir / "report.md")


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


def _event_callback(writer: ev.EventWriter, device: str, stop: StopFlag,
                    stop_at_step: int | None, evaluation: Evaluation) -> Any:
    from transformers import TrainerCallback

    class EventCallback(TrainerCallback):
        """Turns the trainer's logs, evals and saves into events; honours the stop flag."""

        def on_train_begin(self, args, state, control, **kwargs):
            self.last_time = time.perf_counter()
            self.last_tokens = state.num_input_tokens_seen

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
            grad_norm = logs.get("grad_norm")
            writer.emit(ev.Step(
                step=state.global_step, total_steps=state.max_steps, epoch=float(state.epoch or 0),
                loss=float(logs["loss"]), learning_rate=float(logs.get("learning_rate", 0.0)),
                grad_norm=float(grad_norm) if grad_norm is not None else None,
                tokens_per_second=rate, memory=memory_now(device)))

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):
            loss = (metrics or {}).get("eval_loss")
            writer.emit(ev.Eval(step=state.global_step, loss=loss,
                                perplexity=math.exp(min(loss, 50)) if loss is not None else None,
                                samples=evaluation.samples()))

        def on_save(self, args, state, control, **kwargs):
            path = Path(args.output_dir) / f"checkpoint-{state.global_step}"
            writer.emit(ev.Checkpoint(step=state.global_step, path=str(path)))

    return EventCallback()


def run(recipe: Recipe, options: RunOptions) -> Path:
    """Train ``recipe``; returns the run directory. Raises SlothlabError on bad input."""
    if recipe.stages:  # a multi-stage pipeline (gemma3-scratch) runs and resumes its own stages
        from recipes.scratch import run_stages

        return run_stages(recipe, options)
    resume_checkpoint: Path | None = None
    if options.resume_dir is not None:
        finished = [e for e in ev.read_events(options.resume_dir / EVENTS_FILE)
                    if e.type in ev.TERMINAL]
        if finished and finished[-1].type == "finished":
            raise RunDirError("this run already finished", where=str(options.resume_dir),
                              fix=f"re-evaluate it with `slothlab eval {options.resume_dir}`, "
                                  "or start a new run with more steps")
        resume_checkpoint = latest_checkpoint(options.resume_dir)
        if resume_checkpoint is None:
            raise RunDirError("this run has no checkpoint to resume from",
                              where=str(options.resume_dir),
                              fix="start it again with `slothlab --recipe "
                                  f"{options.resume_dir / RECIPE_FILE}`; checkpoints are saved "
                                  f"every save_steps={recipe.save_steps} steps and when a run "
                                  "is stopped after its first step")

    check_sources(recipe)
    from recipes.backends import select_backend

    choice = select_backend(options.backend)  # imports unsloth first when it is chosen
    quiet_libraries()
    device = train_device()

    from recipes.data.prepare import load_examples, prepare

    source = data_source(recipe)
    base_dirs = [PROJECT_ROOT]
    loaded = load_examples(recipe, source, base_dirs=base_dirs)

    run_dir, writer = open_run(recipe, options)
    stop = StopFlag()
    restore_sigint = stop.install()
    started = time.time()
    step = 0
    try:
        resumed_step = int(resume_checkpoint.name.rsplit("-", 1)[1]) if resume_checkpoint else 0
        writer.emit(ev.RunStarted(
            run_dir=str(run_dir), recipe=recipe.name, backend=choice.name,
            backend_reason=choice.reason, device=describe_device(device), tiny=recipe.tiny,
            resumed_from_step=resumed_step, pid=os.getpid()))

        if recipe.tiny:
            model_path: str | Path = _tiny_model_folder(recipe, loaded.examples, cache_root(options),
                                                       run_dir)
        else:
            model_path = recipe.model
        if choice.name == "unsloth":
            from recipes.backends import unsloth as backend
        else:
            from recipes.backends import reference as backend  # type: ignore[no-redef]
        model, tokenizer = load_model(backend, model_path, recipe, device)

        data = prepare(recipe, tokenizer, loaded.examples, loaded.skipped, loaded.n_rows,
                       source=source, notes=[*fit_warning(recipe, device, choice.name),
                                             *loaded.notes])
        evaluation = Evaluation(run_dir, recipe, backend, model, tokenizer, data)
        writer.emit(preflight_event(recipe, data))

        from datasets import Dataset
        from transformers import PrinterCallback

        def as_dataset(items: list) -> Dataset:
            return Dataset.from_dict({"input_ids": [t.input_ids for t in items],
                                      "labels": [t.labels for t in items]})

        base_result = evaluation.base(model_path, writer)
        if stop.requested and resume_checkpoint is None:  # stopped before the first step
            writer.emit(ev.Stopped(step=0, checkpoint=None,
                                   resume_command=f"slothlab --recipe {run_dir / RECIPE_FILE}"))
            return run_dir
        callback = _event_callback(writer, device, stop, options.stop_at_step, evaluation)
        trainer = trainer_class(device)(
            model=model, args=_training_args(recipe, run_dir, device, bool(data.val)),
            train_dataset=as_dataset(data.train),
            eval_dataset=as_dataset(data.val) if data.val else None,
            processing_class=tokenizer, callbacks=[callback])
        trainer.remove_callback(PrinterCallback)  # our events replace its printed dicts
        if choice.name == "reference":  # Unsloth patches TRL's trainer itself: left as it is
            adapters_in_fp32(model)
        trainer.train(resume_from_checkpoint=str(resume_checkpoint) if resume_checkpoint else None)
        step = trainer.state.global_step

        if stop.requested and step < trainer.state.max_steps:
            checkpoint = latest_checkpoint(run_dir)
            writer.emit(ev.Stopped(step=step, checkpoint=str(checkpoint) if checkpoint else None,
                                   resume_command=f"slothlab --resume {run_dir}"))
            return run_dir
        if data.val and not recipe.eval_steps:  # with eval_steps the trainer evaluates at the end
            trainer.evaluate()
        adapter_dir = run_dir / ADAPTER
        model.save_pretrained(str(adapter_dir))
        tokenizer.save_pretrained(str(adapter_dir))
        # A stop that arrived after the last step skips the final evaluation (it can take
        # minutes); `slothlab eval` produces the report later.
        report = None if stop.requested else evaluation.finetuned(adapter_dir, base_result, writer)
        losses = [h["loss"] for h in trainer.state.log_history if "loss" in h]
        writer.emit(ev.Finished(step=step, final_loss=losses[-1] if losses else None,
                                adapter_dir=str(adapter_dir), seconds=time.time() - started,
                                report=report))
        return run_dir
    except SlothlabError as exc:
        writer.emit(ev.Failed(error=exc.what if not exc.where else f"{exc.where}: {exc.what}",
                              advice=exc.fix or "", step=step))
        raise
    except KeyboardInterrupt:
        writer.emit(ev.Failed(error="interrupted twice: stopped without a checkpoint",
                              advice=f"resume from the last saved checkpoint: slothlab --resume {run_dir}",
                              step=step))
        raise
    except BaseException as exc:
        writer.emit(ev.Failed(error=f"{type(exc).__name__}: {exc}", advice=advice_for(exc), step=step))
        raise
    finally:
        restore_sigint()
        writer.close()


def adapters_in_fp32(model: Any) -> None:
    """Train the LoRA weights in fp32, as peft creates them.

    TRL 1.15's SFTTrainer casts the adapters of a quantised model to bf16 (the QLoRA paper's
    storage type), but a checkpoint resumed through peft comes back in fp32, so a resumed run
    drifted from an uninterrupted one (0.3 % by 15 steps after the resume). fp32 adapters cost
    a few MiB, keep small updates that bf16 rounds away, and are what the VRAM estimate counts;
    on a GPU, autocast still computes them in the compute dtype.
    """
    import torch

    for param in model.parameters():
        if param.requires_grad and param.dtype in (torch.bfloat16, torch.float16):
            param.data = param.data.float()


def preflight_event(recipe: Recipe, data: Any, **extra: Any) -> ev.Preflight:
    """The preflight figures of prepared data, with the optimizer steps the run will take."""
    per_epoch = max(1, math.ceil(len(data.train) / recipe.batch_size)
                    // recipe.gradient_accumulation_steps)
    total = recipe.max_steps or math.ceil(per_epoch * recipe.epochs)
    stats = data.stats
    return ev.Preflight(
        splits=data.splits.sizes(), tokens_min=stats["tokens_min"],
        tokens_median=stats["tokens_median"], tokens_max=stats["tokens_max"],
        trained_token_share=stats["trained_token_share"], truncated=stats["truncated"],
        no_trained_tokens=0, max_seq_length=recipe.max_seq_length, total_steps=total,
        notes=extra.pop("notes", data.notes), task_shares=stats["task_shares"], **extra)


def open_run(recipe: Recipe, options: RunOptions) -> tuple[Path, ev.EventWriter]:
    """The run directory (new, with the resolved recipe; or the one resumed) and its writer."""
    if options.resume_dir is not None:
        run_dir = options.resume_dir
    else:
        run_dir = new_run_dir(options.runs_root, recipe.name)
        (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe), encoding="utf-8")
    writer = ev.EventWriter(run_dir / EVENTS_FILE, echo=options.echo)
    for listener in options.listeners:
        writer.subscribe(listener)
    return run_dir, writer


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


def trainer_class(device: str) -> type:
    """TRL's SFTTrainer; on a CPU, with the model's own loss instead of TRL's Triton loss head.

    TRL 1.15 computes every SFT loss through a fused LM-head Triton kernel, and Triton has no
    CPU driver ("0 active drivers"). The model's own causal-LM cross-entropy is the same loss
    (mean negative log-likelihood over tokens whose label is not -100), so on a CPU the trainer
    calls it instead. Everything else (data collation, optimizer, schedule, checkpoints) stays TRL's.
    """
    from trl import SFTTrainer

    if device == "cuda":
        return SFTTrainer
    from transformers import Trainer

    class CPUSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            inputs["use_cache"] = False
            return Trainer.compute_loss(self, model, inputs, return_outputs=return_outputs,
                                        num_items_in_batch=num_items_in_batch)

    return CPUSFTTrainer


def load_model(backend: types.ModuleType, model_path: str | Path, recipe: Recipe,
               device: str) -> tuple[Any, Any]:
    from recipes.models import CHAT_TEMPLATES

    try:
        model, tokenizer = backend.load(model_path, recipe, device)
    except OSError as exc:
        raise SlothlabError(
            f"could not load model '{model_path}' ({str(exc).splitlines()[0][:200]})",
            where="model",
            fix="check the hub id / your network and HF token, or run offline with --tiny, or "
                "--set model=/path/to/local/model",
        ) from None
    if recipe.chat_template != "auto":
        tokenizer.chat_template = CHAT_TEMPLATES[recipe.chat_template]
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def advice_for(exc: BaseException) -> str:
    text = str(exc)
    if "out of memory" in text.lower():
        return ("CUDA ran out of memory: lower batch_size or max_seq_length, keep "
                "gradient_checkpointing on, or raise gradient_accumulation_steps instead")
    return "rerun with --debug for the traceback; the run directory keeps events.jsonl"
