"""One runner for every recipe: the run directory, events, stop signals, resume, the stages in order.

    slothlab --recipe demo            # headless, renders the events with Rich
    slothlab --recipe demo --json     # the raw event stream (what the TUI reads)
    slothlab --resume runs/<id>       # skips finished stages, continues the current one

A run is an ordered list of stages (recipes/stages/): an ordinary recipe is one ``finetune``
stage; gemma3-scratch is ``tokenizer → pretrain → finetune``. Bad input is refused before a run
directory exists. The backend is chosen (and unsloth imported, when chosen) before anything
imports transformers, trl or peft. Every outcome ends the event stream with ``finished``,
``stopped`` (Ctrl-C / SIGINT: the step ends, a checkpoint is saved, ``--resume`` continues) or
``failed`` (the error and what to do).
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from recipes import distributed
from recipes import events as ev
from recipes.context import RunContext, StageOutcome
from recipes.errors import RecipeError, RunDirError, SlothlabError
from recipes.host import PROJECT_ROOT, describe_device, quiet_libraries, train_device
from recipes.rundir import (
    EVENTS_FILE,
    RECIPE_FILE,
    checkpoints,
    latest_checkpoint,
    new_run_dir,
    read_done,
    set_aside_broken,
    stage_folder,
    write_json,
)
from recipes.schema import Recipe, data_source, dump_recipe
from recipes.signals import StopFlag
from recipes.stages import finetune, pretrain, tokenizer

STAGES = {"tokenizer": tokenizer, "pretrain": pretrain, "finetune": finetune}


@dataclass
class RunOptions:
    backend: str = "auto"
    runs_root: Path = Path("runs")
    echo: TextIO | None = None  # also write events as JSON lines here (--json: stdout)
    resume_dir: Path | None = None
    listeners: list[Callable[[ev.Event], None]] = field(default_factory=list)
    stop_at_step: int | None = None  # tests: behave as if Ctrl-C arrived during this step
    cache_dir: Path | None = None
    allow_data_change: bool = False  # resume even though the data differs from the run's
    variant: str = ""  # an experiment's variant (recipes/experiment.py): tags every event
    stop: Any = None  # a StopFlag shared with an experiment (one signal stops both); None = own
    resume_command: str = ""  # what continues a stopped run, when not --resume (an experiment's)


def stage_names(recipe: Recipe) -> list[str]:
    return list(recipe.stages) or ["finetune"]


def check_stages(recipe: Recipe) -> None:
    """Stages are known, in pipeline order, without gaps. Nothing has started."""
    unknown = [s for s in recipe.stages if s not in STAGES]
    if unknown:
        raise RecipeError(f"unknown stage(s) {', '.join(unknown)}", where="stages",
                          fix=f"choose from {', '.join(STAGES)}, in that order")
    positions = [list(STAGES).index(s) for s in recipe.stages]
    if positions and positions != list(range(positions[0], positions[0] + len(positions))):
        raise RecipeError(
            f"stages {recipe.stages} are not consecutive stages in pipeline order",
            where="stages",
            fix="run tokenizer, pretrain, finetune in order (or a run of them, e.g. "
                "[pretrain, finetune]); a later stage alone reads an earlier run's output via "
                "tokenizer_path or model")


def check_sources(recipe: Recipe) -> None:
    """Fail now, with advice, if the data needs a hub that cannot be reached."""
    from recipes.data.sources import resolve_path
    from recipes.hub import ensure_available

    source = data_source(recipe)
    if resolve_path(source, base_dirs=[PROJECT_ROOT]) is None:
        ensure_available(source, kind="dataset", field="dataset",
                         local_hint="/path/to/data.jsonl", tiny=recipe.tiny)


def check_ablation(recipe: Recipe, options: RunOptions) -> None:
    """misalign_labels trains a deliberately broken model: only as an experiment's variant,
    beside the aligned control that shows what the fix is worth."""
    if recipe.misalign_labels and not options.variant:
        raise RecipeError(
            "misalign_labels=true (a teaching ablation: labels shifted one extra position) runs "
            "only as a variant of an experiment", where="misalign_labels",
            fix="run it beside its aligned control: slothlab experiment seed001-medqa --tiny; a "
                "stopped variant continues with its experiment's command (--resume)")


def pending(recipe: Recipe, run_dir: Path) -> list[str]:
    """The stages of ``run_dir`` without a done marker, in order."""
    staged = bool(recipe.stages)
    return [s for s in stage_names(recipe)
            if read_done(stage_folder(run_dir, s, staged=staged)) is None]


def resumable(recipe: Recipe, run_dir: Path) -> bool:
    """Anything to continue from: a finished stage, or a whole checkpoint of the current one."""
    left = pending(recipe, run_dir)
    if len(left) < len(stage_names(recipe)):
        return True
    return bool(left) and latest_checkpoint(
        stage_folder(run_dir, left[0], staged=bool(recipe.stages))) is not None


def check_resume(recipe: Recipe, run_dir: Path, set_aside: list[str]) -> None:
    if not pending(recipe, run_dir) or _finished(run_dir):
        if recipe.stages:
            raise RunDirError(
                f"this run already finished every stage ({', '.join(recipe.stages)})",
                where=str(run_dir),
                fix="start a new run; to redo a later stage on this run's output, e.g. "
                    f"--set stages=[finetune] --set model={run_dir}/stages/pretrain/model")
        raise RunDirError("this run already finished", where=str(run_dir),
                          fix=f"re-evaluate it with `slothlab eval {run_dir}`, "
                              "or start a new run with more steps")
    if not resumable(recipe, run_dir):
        broken = f" ({'; '.join(set_aside)})" if set_aside else ""
        raise RunDirError(f"this run has no checkpoint to resume from{broken}",
                          where=str(run_dir),
                          fix=f"start it again with `slothlab --recipe {run_dir / RECIPE_FILE}`; "
                              f"checkpoints are saved every save_steps={recipe.save_steps} "
                              "steps and when a run is stopped after its first step")


def prepare_resume(recipe: Recipe, options: RunOptions) -> tuple[Any, list[str]]:
    """Lock the run, set its torn or corrupt checkpoints aside and check there is something to
    continue. Returns the lock and what was done, for the preflight."""
    from recipes.lock import lock_run

    run_dir = options.resume_dir
    if not (run_dir / RECIPE_FILE).is_file():
        raise RunDirError("not a slothlab run (recipe.yaml missing)", where=str(run_dir),
                          fix="pass a folder created by `slothlab --recipe ...` (runs/<id>)")
    left = pending(recipe, run_dir)
    if not left or _finished(run_dir) or not (
            resumable(recipe, run_dir)
            or checkpoints(stage_folder(run_dir, left[0], staged=bool(recipe.stages)))):
        check_resume(recipe, run_dir, [])  # refuses, touching nothing
    from recipes.lock import LOCK_FILE

    created = not (run_dir / LOCK_FILE).exists()
    lock = lock_run(run_dir)  # before any change: of two resumes of one run, one goes on
    try:
        moved = [line for name in pending(recipe, run_dir)
                 for line in set_aside_broken(stage_folder(run_dir, name, staged=bool(recipe.stages)))]
        check_resume(recipe, run_dir, moved)
    except BaseException:
        lock.close()
        if created:
            (run_dir / LOCK_FILE).unlink(missing_ok=True)
        raise
    return lock, moved


def check_same_data(run_dir: Path, record: dict[str, Any], allow: bool) -> list[str]:
    """Refuse to resume on data that changed since the run started (unless allowed)."""
    import json

    from recipes.fingerprint import DATA_FILE, differences

    try:
        old = json.loads((run_dir / DATA_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        write_json(run_dir / DATA_FILE, record)  # a run from before data.json: record it now
        return []
    changed = differences(old, record)
    if not changed:
        return []
    if not allow:
        raise RunDirError("the data changed since this run started: " + "; ".join(changed[:5]),
                          where=str(run_dir),
                          fix="restore the data the run trained on, start a new run, or resume "
                              "anyway with --allow-data-change")
    write_json(run_dir / DATA_FILE, record)
    return ["resumed on changed data (--allow-data-change): " + "; ".join(changed[:5])]


def _finished(run_dir: Path) -> bool:
    ends = [e.type for e in ev.read_events(run_dir / EVENTS_FILE) if e.type in ev.TERMINAL]
    return bool(ends) and ends[-1] == "finished"


def open_run(recipe: Recipe, options: RunOptions,
             record: dict[str, Any]) -> tuple[Path, ev.EventWriter]:
    """The run directory (new, with the resolved recipe and its data record; or the one
    resumed) and its writer. A new directory that cannot be written is removed again.
    Under torchrun rank 0 makes it and writes the events; the other ranks learn its path."""
    from recipes.fingerprint import DATA_FILE

    def create() -> Path:
        if options.resume_dir is not None:
            distributed.check_same_world(options.resume_dir)
            return options.resume_dir
        run_dir = new_run_dir(options.runs_root, recipe.name)
        try:
            (run_dir / RECIPE_FILE).write_text(dump_recipe(recipe), encoding="utf-8")
            write_json(run_dir / DATA_FILE, record)
            (run_dir / EVENTS_FILE).touch()
        except OSError as exc:
            shutil.rmtree(run_dir, ignore_errors=True)
            from recipes.disk import disk_full

            if disk_full(exc):
                raise RunDirError("disk full: cannot write a new run here", where=str(run_dir),
                                  fix="free some space, or pass --runs-dir on another disk") from None
            raise RunDirError(f"cannot write the run directory ({exc.strerror})",
                              where=str(run_dir), fix="pass --runs-dir a folder you can write to") from None
        return run_dir

    run_dir = distributed.from_main(create)
    main = distributed.is_main()  # only rank 0 writes events (and echoes them)
    writer = ev.EventWriter(run_dir / EVENTS_FILE if main else None,
                            echo=options.echo if main else None,
                            variant=options.variant)
    for listener in options.listeners:
        writer.subscribe(listener)
    return run_dir, writer


def read_inputs(recipe: Recipe, resume_dir: Path | None) -> dict[str, Any]:
    """What the stages read, loaded before a run directory exists (bad data creates nothing):
    a staged recipe's corpus sample, or a dataset normalised to chat examples."""
    if recipe.stages:
        from recipes.corpus import check_same_corpus, load_corpus

        corpus = load_corpus(recipe)
        if resume_dir is not None:
            check_same_corpus(resume_dir, recipe, corpus)
        return {"corpus": corpus}
    from recipes.data.prepare import load_examples

    return {"loaded": load_examples(recipe, data_source(recipe), base_dirs=[PROJECT_ROOT])}


def run(recipe: Recipe, options: RunOptions) -> Path:
    """Run (or resume) the recipe's stages in order; returns the run directory.

    Raises SlothlabError on bad input, before anything is written."""
    quiet_libraries()  # before the libraries load: their import-time warnings stay quiet
    check_stages(recipe)
    check_ablation(recipe, options)
    if recipe.stages:
        from recipes.corpus import parse_ratios

        parse_ratios(recipe)
    held: list[Any] = []  # the run's lock: rank 0 alone takes it under torchrun

    def prepare() -> list[str]:
        lock, notes = prepare_resume(recipe, options)
        held.append(lock)
        return notes

    notes = distributed.from_main(prepare) if options.resume_dir is not None else []
    lock = held[0] if held else None
    try:
        return _run(recipe, options, notes, lock)
    finally:
        if lock is not None:
            lock.close()


def _run(recipe: Recipe, options: RunOptions, notes: list[str], lock: Any) -> Path:
    from recipes.fingerprint import data_record

    for name in stage_names(recipe):
        check = getattr(STAGES[name], "check", None)
        if check is not None:
            check(recipe)
    check_sources(recipe)
    from recipes.backends import select_backend

    choice = select_backend(options.backend)  # imports unsloth first when it is chosen
    if choice.name == "unsloth" and {"tokenizer", "pretrain"} & set(recipe.stages):
        choice = type(choice)(choice.name, f"{choice.reason}; for the finetune stage only (the "
                                           "tokenizer and full-parameter pretraining use the "
                                           "reference code path)")
    quiet_libraries()
    device = train_device()
    inputs = read_inputs(recipe, options.resume_dir)
    record = data_record(recipe)
    if options.resume_dir is not None:
        notes += distributed.from_main(
            lambda: check_same_data(options.resume_dir, record, options.allow_data_change))

    run_dir, writer = open_run(recipe, options, record)
    own_lock = None
    if lock is None and distributed.is_main():
        from recipes.lock import lock_run

        own_lock = lock_run(run_dir)
    stop = options.stop if options.stop is not None else StopFlag()
    restore_signals = stop.install()
    ctx = RunContext(recipe, options, run_dir, writer, distributed.synced_stop(stop), device,
                     choice, notes=notes, **inputs)
    last_step = 0

    def remember_step(event: ev.Event) -> None:
        nonlocal last_step
        if isinstance(event, ev.Step):
            last_step = event.step

    writer.subscribe(remember_step)
    started = time.time()
    try:
        left = pending(recipe, run_dir)
        checkpoint = ctx.checkpoint(left[0]) if left else None
        writer.emit(ev.RunStarted(
            run_dir=str(run_dir), recipe=recipe.name, backend=choice.name,
            backend_reason=choice.reason, device=describe_device(device), tiny=recipe.tiny,
            resumed_from_step=int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else 0,
            pid=os.getpid(), world_size=distributed.world_size()))
        outcome = StageOutcome(True)
        for name in stage_names(recipe):
            if name not in left:
                continue
            outcome = STAGES[name].run(ctx)
            if not outcome.finished or (stop.requested and name != stage_names(recipe)[-1]):
                if len(pending(recipe, run_dir)) < len(stage_names(recipe)):
                    from recipes.report import write_report

                    write_report(run_dir, recipe)  # what the finished stages measured
                found = ctx.checkpoint(name) if not outcome.finished else None
                again = options.resume_command or (
                    f"{distributed.command()} --resume {run_dir}" if resumable(recipe, run_dir)
                    else f"{distributed.command()} --recipe {run_dir / RECIPE_FILE}")
                writer.emit(ev.Stopped(step=outcome.step, checkpoint=str(found) if found else None,
                                       resume_command=again, signal=stop.signal_name))
                return run_dir
        from recipes.report import write_report

        write_report(run_dir, recipe)
        writer.emit(ev.Finished(step=outcome.step, final_loss=outcome.final_loss,
                                adapter_dir=outcome.output, seconds=time.time() - started,
                                report=str(run_dir / "report.md")))
        return run_dir
    except KeyboardInterrupt:
        writer.emit(ev.Failed(error="interrupted twice: stopped at once",
                              advice=kept(ctx, "resume from the last whole checkpoint"),
                              step=last_step))
        raise
    except BaseException as exc:
        event = failure(ctx, exc, last_step)
        writer.emit(event)
        from recipes.disk import disk_full

        if disk_full(exc):
            raise DiskFull(event.error, fix=event.advice) from exc
        raise
    finally:
        restore_signals()
        writer.close()
        if own_lock is not None:
            own_lock.close()


class DiskFull(SlothlabError):
    """The disk filled up during the run; nothing saved before is lost."""

    exit_code = 1


def kept(ctx: RunContext, advice: str) -> str:
    """``advice``, and what survives of the training: the newest whole checkpoint to resume."""
    left = pending(ctx.recipe, ctx.run_dir)
    found = latest_checkpoint(ctx.folder(left[0])) if left else None
    if found is None:
        return advice
    return (f"{advice}. Nothing trained up to step {found.name.rsplit('-', 1)[1]} is lost: "
            f"`slothlab --resume {ctx.run_dir}` continues from {found}")


def failure(ctx: RunContext, exc: BaseException, step: int) -> ev.Failed:
    """The ``failed`` event for ``exc``: what happened, where, and what to do."""
    from recipes.disk import MB, disk_full, free_bytes

    if disk_full(exc):
        need = f", a checkpoint needs about {ctx.checkpoint_bytes / MB:,.1f} MB" \
            if ctx.checkpoint_bytes else ""
        error = (f"disk full at {ctx.run_dir}: {free_bytes(ctx.run_dir) / MB:,.0f} MB free"
                 f"{need}")
        return ev.Failed(error=error, step=step, advice=kept(
            ctx, "free some space (or lower save_total_limit), then resume"))
    if isinstance(exc, SlothlabError):
        error = exc.what if not exc.where else f"{exc.where}: {exc.what}"
        return ev.Failed(error=error, advice=kept(ctx, exc.fix or ""),
                         step=getattr(exc, "step", step))
    return ev.Failed(error=f"{type(exc).__name__}: {exc}", advice=kept(ctx, advice_for(exc)),
                     step=step)


def advice_for(exc: BaseException) -> str:
    text = str(exc)
    if "out of memory" in text.lower():
        return ("CUDA ran out of memory: lower batch_size or max_seq_length, keep "
                "gradient_checkpointing on, or raise gradient_accumulation_steps instead")
    return "rerun with --debug for the traceback; the run directory keeps events.jsonl"
