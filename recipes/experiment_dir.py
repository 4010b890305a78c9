"""An experiment's folder: its layout, and the state of its variants read back from disk.

    runs/<experiment>[-tiny]/
        plan.json                  what is run: the file, --set, tiny, every variant's recipe
        experiment_events.jsonl    experiment_started / variant_ended / experiment_ended
        experiment.json  .md       the comparison table (rewritten after every variant)
        losses.png                 every variant's train and eval curves, overlaid
        base-eval/<signature>/     the base model's evaluation, shared by the variants
        variants/<variant>/<run>/  each variant: an ordinary run directory (recipes/runner.py)

Read by the experiment runner (recipes/experiment.py), its report and the front ends.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes.errors import RunDirError
from recipes.experiment_spec import Variant
from recipes.host import slothlab_alive
from recipes.lock import LOCK_FILE, holder
from recipes.rundir import EVENTS_FILE, check_run_dir
from recipes.schema import Recipe

PLAN = "plan.json"
EXPERIMENT_EVENTS = "experiment_events.jsonl"
VARIANTS = "variants"
BASE_EVAL = "base-eval"
PROVENANCE = "computed_by.json"
REPORT_JSON = "experiment.json"
# Fields that change what is trained but not the base model's evaluation (its adapter is off):
# variants that differ only in these share one base evaluation.
TRAINING_ONLY = frozenset({
    "name", "description", "tiny_overrides", "lora_r", "lora_alpha", "lora_dropout",
    "target_modules", "batch_size", "gradient_accumulation_steps", "epochs", "max_steps",
    "learning_rate", "lr_scheduler", "warmup_steps", "weight_decay", "optimizer",
    "max_grad_norm", "gradient_checkpointing", "logging_steps", "eval_steps", "save_steps",
    "save_total_limit", "task_balance", "misalign_labels", "eval_prompts",
    "pretrain_learning_rate", "pretrain_epochs", "pretrain_max_steps", "pretrain_optimizer"})


def recipe_data(recipe: Recipe) -> dict[str, Any]:
    """A resolved recipe as its run's recipe.yaml holds it (tiny overrides already applied)."""
    data = recipe.to_dict()
    if recipe.tiny:
        data["tiny_overrides"] = {}
    return data


def variant_runs(folder: Path, variant_folder: str) -> list[Path]:
    """The run directories of a variant (by its folder name), oldest first (a second one only
    when the first ended before it could be resumed)."""
    root = folder / VARIANTS / variant_folder
    found = []
    for path in sorted(root.iterdir()) if root.is_dir() else []:
        try:
            found.append(check_run_dir(path))
        except RunDirError:
            continue
    return found


def run_status(run_dir: Path) -> str:
    """finished | stopped | failed | running (its process is alive) | interrupted."""
    events = ev.read_events(run_dir / EVENTS_FILE)
    ends = [e.type for e in events if e.type in ev.TERMINAL]
    starts = [e for e in events if isinstance(e, ev.RunStarted)]
    last_start = max((i for i, e in enumerate(events) if isinstance(e, ev.RunStarted)),
                     default=-1)
    last_end = max((i for i, e in enumerate(events) if e.type in ev.TERMINAL), default=-1)
    if last_end > last_start and ends:
        return ends[-1]
    if starts and _held(run_dir, starts[-1].pid):
        return "running"
    return "interrupted"


def _held(folder: Path, pid: int) -> int:
    """The pid holding the folder's lock (recipes/lock.py), or 0; folders from before locks:
    ``pid`` when that process still runs."""
    if (folder / LOCK_FILE).exists():
        return holder(folder) or 0
    return pid if slothlab_alive(pid) else 0


def experiment_status(folder: Path) -> tuple[str, int]:
    """(status, pid): finished | stopped | failed (its last end) | running (its process is
    alive) | interrupted (killed without an end) | pending (never started)."""
    path = folder / EXPERIMENT_EVENTS
    started: ev.ExperimentStarted | None = None
    ended: ev.ExperimentEnded | None = None
    for event in ev.read_events(path) if path.is_file() else []:
        if isinstance(event, ev.ExperimentStarted):
            started, ended = event, None
        elif isinstance(event, ev.ExperimentEnded):
            ended = event
    if started is None:
        return "pending", 0
    if ended is not None:
        return ended.status, 0
    pid = _held(folder, started.pid)
    return ("running", pid) if pid else ("interrupted", 0)


def running_pid(folder: Path) -> int:
    """Another live process running this experiment folder, or 0."""
    status, pid = experiment_status(folder)
    return pid if status == "running" and pid != os.getpid() else 0


def read_plan(folder: Path) -> dict[str, Any]:
    """plan.json: the file, --set, tiny and every variant (name, folder, overrides, recipe)."""
    try:
        return json.loads((folder / PLAN).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}


def current_run(folder: Path, variant_folder: str) -> Path | None:
    runs = variant_runs(folder, variant_folder)
    return runs[-1] if runs else None


def base_signature(recipe: Recipe) -> str:
    """Equal for recipes whose base model sees the same eval set the same way."""
    data = {k: v for k, v in recipe_data(recipe).items() if k not in TRAINING_ONLY}
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:12]


def read_provenance(folder: Path) -> dict[str, str]:
    path = folder / PROVENANCE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def base_eval_source(folder: Path, variant: Variant, run_dir: Path) -> str:
    """The variant whose run computed this variant's base evaluation ('' when unknown)."""
    shared = folder / BASE_EVAL / base_signature(variant.recipe)
    provenance = read_provenance(shared)
    for result in sorted((run_dir / "eval").glob("base-*.json")):
        if result.name in provenance:
            return provenance[result.name]
    return ""


def load_table(folder: Path) -> dict[str, Any] | None:
    """experiment.json of an experiment folder (None when absent or torn)."""
    path = folder / REPORT_JSON
    try:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except ValueError:
        return None


def is_experiment(folder: Path) -> bool:
    return (folder / PLAN).is_file()
