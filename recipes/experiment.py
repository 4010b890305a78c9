"""Run an experiment: its variants one after another, each an ordinary run, one table at the end.

    slothlab experiment seed001-medqa --tiny        # tui/experiment_cli.py drives this module

Each variant is an ordinary run directory under the experiment's folder (layout in
recipes/experiment_dir.py), started or resumed with ``recipes.runner.run``. Running the same
command again continues: finished variants are skipped, a stopped one resumes from its
checkpoint. A different plan in the same folder is refused. The base evaluation (greedy decoding
with the adapter off) is the same for every variant with the same base model and eval set: the
first variant computes it, the others find it in their ``eval/`` cache (recipes/evaluate.py keys
it by model + eval set). Ctrl-C (or SIGTERM, SIGHUP) stops the current variant with a checkpoint,
then the experiment (one StopFlag for both); the table is rewritten after every variant.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from recipes import events as ev
from recipes.errors import RecipeError, RunDirError, SlothlabError
from recipes.experiment_dir import (
    BASE_EVAL,
    EXPERIMENT_EVENTS,
    PLAN,
    PROVENANCE,
    VARIANTS,
    base_signature,
    current_run,
    read_provenance,
    recipe_data,
    run_status,
    running_pid,
    variant_runs,
)
from recipes.experiment_report import write_experiment_report
from recipes.experiment_spec import Experiment, Variant
from recipes.rundir import RECIPE_FILE, write_json
from recipes.schema import Recipe, load_recipe


@dataclass
class ExperimentOptions:
    backend: str = "auto"
    runs_root: Path = Path("runs")
    out: Path | None = None  # the experiment folder; default <runs_root>/<name>[-tiny]
    resume: bool = False  # the folder must exist (--resume)
    echo: TextIO | None = None  # --json: every event (the runs' and the experiment's) here
    listeners: list[Callable[[ev.Event], None]] = field(default_factory=list)
    cache_dir: Path | None = None
    stop_at: tuple[str, int] | None = None  # tests: Ctrl-C during this variant's step


@dataclass
class Outcome:
    status: str  # finished | stopped | failed
    experiment_dir: Path
    table: dict[str, Any]
    stop_exit_code: int = 130  # 128 + the signal that stopped it (SIGINT 130, SIGTERM 143)


def experiment_dir(experiment: Experiment, options: ExperimentOptions) -> Path:
    if options.out is not None:
        return options.out
    return options.runs_root / (experiment.name + ("-tiny" if experiment.tiny else ""))


def build_plan(experiment: Experiment) -> dict[str, Any]:
    return {"experiment": experiment.name, "file": str(experiment.path.resolve()),
            "recipe": str(experiment.recipe_path), "tiny": experiment.tiny,
            "set": experiment.sets, "primary_metric": experiment.primary_metric,
            "command": experiment.command,
            "variants": [{"name": v.name, "folder": v.folder, "overrides": v.overrides,
                          "recipe": recipe_data(v.recipe)} for v in experiment.variants]}


def _plan_difference(old: dict[str, Any], new: dict[str, Any]) -> str:
    """The first difference between two plans, in words ('' when they run the same)."""
    old_v = {v["name"]: v["recipe"] for v in old.get("variants", [])}
    new_v = {v["name"]: v["recipe"] for v in new["variants"]}
    if list(old_v) != list(new_v):
        return f"its variants were {', '.join(old_v)}; now {', '.join(new_v)}"
    defaults = Recipe().to_dict()  # a field added since the plan was written: its default
    for name, recipe in new_v.items():
        for key, value in recipe.items():
            was = old_v[name].get(key, defaults.get(key))
            if was != value:
                return f"variant '{name}': {key} was {was!r}, now {value!r}"
    return ""


def open_experiment(experiment: Experiment, options: ExperimentOptions) -> tuple[Path, bool]:
    """(the experiment folder, whether it already existed); refuses a different plan."""
    folder = experiment_dir(experiment, options)
    plan = build_plan(experiment)
    existing = folder / PLAN
    if existing.is_file():
        difference = _plan_difference(json.loads(existing.read_text(encoding="utf-8")), plan)
        pid = running_pid(folder)
        if pid:
            raise RunDirError(f"this experiment is running now (process {pid})",
                              where=str(folder), fix="wait for it, or stop it (Ctrl-C in its "
                              "terminal, s in the TUI) and run this command again")
        if difference:
            raise RunDirError(
                f"this folder holds a different experiment ({difference})", where=str(folder),
                fix="run the command that started it (see its plan.json), or pass --out NEW_DIR "
                    "to start this one separately")
        return folder, True
    if options.resume:
        raise RunDirError("no experiment to resume here", where=str(folder),
                          fix=f"start it first: {experiment.command}")
    if folder.exists() and any(folder.iterdir()):
        raise RunDirError("the folder exists and is not an experiment (plan.json missing)",
                          where=str(folder), fix="pass --out NEW_DIR")
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise RunDirError(f"cannot create the experiment folder ({exc.strerror})",
                          where=str(folder), fix="pass --runs-dir a folder you can write to") from None
    write_json(folder / PLAN, plan)
    return folder, False


# ------------------------------------------------------------------------------ variants

class SharedBaseEval:
    """Seeds a variant's eval/ cache with the base evaluations earlier variants computed, and
    keeps the one it computes for the next (an event listener on the variant's run)."""

    def __init__(self, folder: Path, variant: str) -> None:
        self.folder, self.variant = folder, variant
        self.run_dir: Path | None = None
        self.seeded: set[str] = set()

    def __call__(self, event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            self.run_dir = Path(event.run_dir)
            target = self.run_dir / "eval"
            for cached in sorted(self.folder.glob("base-*.json")):
                target.mkdir(exist_ok=True)
                if not (target / cached.name).exists():
                    shutil.copy2(cached, target / cached.name)
                self.seeded.add(cached.name)
        elif isinstance(event, ev.Metrics) and event.stage == "base" and self.run_dir:
            self.keep()

    def keep(self) -> None:
        assert self.run_dir is not None
        provenance = read_provenance(self.folder)
        for result in sorted((self.run_dir / "eval").glob("base-*.json")):
            if result.name in self.seeded or (self.folder / result.name).exists():
                continue
            self.folder.mkdir(parents=True, exist_ok=True)
            shutil.copy2(result, self.folder / result.name)
            provenance[result.name] = self.variant
        write_json(self.folder / PROVENANCE, provenance)


# ------------------------------------------------------------------------------ running

def run_experiment(experiment: Experiment, options: ExperimentOptions) -> Outcome:
    """Run (or continue) every variant in order. SlothlabError on bad input, before a variant
    trains; a variant that fails is recorded and the next one runs."""
    from recipes.distributed import launched
    from recipes.runner import check_stages
    from recipes.signals import StopFlag

    if launched():
        raise RecipeError("an experiment runs its variants one after another in one process",
                          where="torchrun / accelerate launch",
                          fix="run `slothlab experiment` without a launcher; launch single "
                              "recipes with torchrun")
    for variant in experiment.variants:
        check_stages(variant.recipe)
    folder, existed = open_experiment(experiment, options)
    lock = lock_experiment(folder)
    writer = ev.EventWriter(folder / EXPERIMENT_EVENTS, echo=options.echo)
    for listener in options.listeners:
        writer.subscribe(listener)
    stop = StopFlag()
    restore_sigint = stop.install()
    statuses: dict[str, str] = {}
    try:
        table = write_experiment_report(folder, experiment)
        writer.emit(ev.ExperimentStarted(
            experiment=experiment.name, experiment_dir=str(folder), tiny=experiment.tiny,
            primary_metric=table["primary_metric"], command=experiment.command, pid=os.getpid(),
            variants=[{"name": r["variant"], "overrides": r["overrides"], "status": r["status"]}
                      for r in table["rows"]]))
        for variant in experiment.variants:
            if stop.requested:
                break
            release_memory()
            status, run_dir, skipped = _run_variant(folder, experiment, variant, options, stop)
            statuses[variant.name] = status
            table = write_experiment_report(folder, experiment)
            row = next(r for r in table["rows"] if r["variant"] == variant.name)
            writer.emit(ev.VariantEnded(variant=variant.name, status=status,
                                        run_dir=str(run_dir or ""), row=row, skipped=skipped,
                                        best=table.get("best") or ""))
            if status == "stopped":
                break
        status = ("stopped" if stop.requested or "stopped" in statuses.values()
                  or len(statuses) < len(experiment.variants)
                  else "failed" if "failed" in statuses.values() else "finished")
        table = write_experiment_report(folder, experiment)
        writer.emit(ev.ExperimentEnded(
            status=status, experiment_dir=str(folder), report=str(folder / "experiment.md"),
            best=table.get("best") or "",
            resume_command=experiment.command if status != "finished" else ""))
        return Outcome(status, folder, table, stop.exit_code)
    except (KeyboardInterrupt, SlothlabError) as exc:  # a second Ctrl-C, or refused input
        writer.emit(ev.ExperimentEnded(
            status="stopped" if isinstance(exc, KeyboardInterrupt) else "failed",
            experiment_dir=str(folder), report=str(folder / "experiment.md"),
            resume_command=experiment.command))
        raise
    finally:
        restore_sigint()
        writer.close()
        lock.close()
        if not existed and not any(variant_runs(folder, v.folder) for v in experiment.variants):
            _remove_if_untouched(folder)


def lock_experiment(folder: Path) -> Any:
    """One process per experiment folder (the lock is held until the experiment ends)."""
    from recipes.lock import lock_run

    try:
        return lock_run(folder)
    except RunDirError as exc:
        raise RunDirError(exc.what.replace("this run is being trained", "this experiment is "
                                           "being run"), where=str(folder),
                          fix="wait for it, or stop it (Ctrl-C in its terminal, s in the TUI) "
                              "and run this command again") from None


def release_memory() -> None:
    """Between variants (one process runs them all): free the last variant's tensors and start
    the next one's VRAM peak from zero, so each row's peak memory is its own."""
    import gc
    import sys

    gc.collect()
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def _remove_if_untouched(folder: Path) -> None:
    """Bad input found by the first variant's run: leave no half-made experiment behind."""
    shutil.rmtree(folder, ignore_errors=True)


def _run_variant(folder: Path, experiment: Experiment, variant: Variant,
                 options: ExperimentOptions, stop: Any) -> tuple[str, Path | None, bool]:
    """(status, run dir, skipped) of one variant: skipped when finished, resumed when it has a
    checkpoint, else a new run. Bad input (nothing started) raises."""
    from recipes.runner import RunOptions, resumable, run

    previous = current_run(folder, variant.folder)
    if previous is not None and run_status(previous) == "finished":
        return "finished", previous, True
    resume_dir = None
    recipe = variant.recipe
    if previous is not None:
        saved = load_recipe(previous / RECIPE_FILE)
        if resumable(saved, previous):
            resume_dir, recipe = previous, saved
    sharer = SharedBaseEval(folder / BASE_EVAL / base_signature(variant.recipe), variant.name)
    started: list[Path] = []

    def remember(event: ev.Event) -> None:
        if isinstance(event, ev.RunStarted):
            started.append(Path(event.run_dir))

    stop_at = options.stop_at[1] if options.stop_at and options.stop_at[0] == variant.name \
        else None
    run_options = RunOptions(
        backend=options.backend, runs_root=folder / VARIANTS / variant.folder,
        echo=options.echo, resume_dir=resume_dir, cache_dir=options.cache_dir,
        listeners=[remember, sharer, *options.listeners], stop_at_step=stop_at,
        variant=variant.name, stop=stop, resume_command=experiment.command)
    try:
        run_dir = run(recipe, run_options)
    except SlothlabError:
        if not started:
            raise  # refused before it started: bad input, the same for the variants after it
        return "failed", started[0], False
    except KeyboardInterrupt:
        raise
    except Exception:  # the run wrote its failed event (with the advice): on to the next
        return "failed", started[0] if started else None, False
    return run_status(run_dir), run_dir, False
