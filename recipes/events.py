"""The event stream: one schema shared by the training process and every front end.

A run writes one JSON object per line to ``events.jsonl`` in its run directory (and to stdout
with ``--json``). Each line has ``type`` and ``time`` (Unix seconds) plus the fields of its
dataclass below. Consumers call ``parse_event(line)``; unknown fields from a newer writer are
ignored, so old front ends keep reading new runs.

Stdlib only: the TUI imports this without torch.
"""

from __future__ import annotations

import dataclasses
import json
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, TextIO


@dataclass
class Memory:
    """Memory at a point in time. ``kind`` says what is measured: GPU VRAM or process RSS."""

    kind: str  # "vram" | "rss"
    now_mb: float
    peak_mb: float
    total_mb: float

    @property
    def label(self) -> str:
        return "VRAM" if self.kind == "vram" else "RAM (RSS)"


@dataclass
class Event:
    type: ClassVar[str] = "event"
    time: float = field(default_factory=time.time, kw_only=True)
    # Experiments (recipes/experiment.py): the variant a run's events belong to. "" = a plain
    # run, and then the key is left out of the JSON (runs written before it parse unchanged).
    variant: str = field(default="", kw_only=True)

    def to_dict(self) -> dict[str, Any]:
        """The event as JSON-ready data. NaN and ±Inf are not JSON: they become null, and the
        field names (dotted) are listed under ``nonfinite``. ``variant`` is left out when empty."""
        bad: list[str] = []
        data = _finite({"type": self.type, **dataclasses.asdict(self)}, "", bad)
        if not data["variant"]:
            del data["variant"]
        if bad:
            data["nonfinite"] = bad
        return data

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, separators=(",", ":"),
                          allow_nan=False)


def _finite(value: Any, path: str, bad: list[str]) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        bad.append(path)
        return None
    if isinstance(value, dict):
        return {k: _finite(v, f"{path}.{k}" if path else str(k), bad) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v, f"{path}.{i}", bad) for i, v in enumerate(value)]
    return value


@dataclass
class RunStarted(Event):
    type: ClassVar[str] = "run_started"
    run_dir: str
    recipe: str
    backend: str
    backend_reason: str
    device: str
    tiny: bool
    resumed_from_step: int = 0
    pid: int = 0
    world_size: int = 1  # processes training together (torchrun / accelerate launch); 1 = one


@dataclass
class Preflight(Event):
    type: ClassVar[str] = "preflight"
    splits: dict[str, int]
    tokens_min: int
    tokens_median: float
    tokens_max: int
    trained_token_share: float
    truncated: int
    no_trained_tokens: int
    max_seq_length: int
    total_steps: int
    notes: list[str] = field(default_factory=list)
    # Multitask recipes: each task's share of trained tokens, "before" and "after" balancing.
    task_shares: dict[str, dict[str, float]] = field(default_factory=dict)
    stage: str = ""  # multi-stage pipelines (gemma3-scratch): which stage; "" = the only one
    # What really runs, read from the live model and trainer (recipes/settings.py): backend,
    # optimizer class, compute dtype, 4-bit, LoRA dtype, gradient checkpointing, fused kernels.
    settings: dict[str, str] = field(default_factory=dict)
    # Where that differs from the recipe, and why ("optimizer: ... set back to adamw_8bit").
    changes: list[str] = field(default_factory=list)
    world_size: int = 1  # processes training together; 1 = one
    global_batch: int = 0  # examples per optimizer step: batch x accumulation x processes


@dataclass
class Step(Event):
    type: ClassVar[str] = "step"
    step: int
    total_steps: int
    epoch: float
    loss: float | None  # None: not finite (see ``nonfinite``)
    learning_rate: float
    grad_norm: float | None
    tokens_per_second: float
    memory: Memory | None = None
    stage: str = ""


@dataclass
class Sample:
    prompt: str
    reference: str
    output: str


@dataclass
class Eval(Event):
    type: ClassVar[str] = "eval"
    step: int
    loss: float | None
    perplexity: float | None
    samples: list[Sample] = field(default_factory=list)
    stage: str = ""
    # Eval loss of named parts of the eval set (per task, per language), beside the overall one.
    subset_losses: dict[str, float] = field(default_factory=dict)


@dataclass
class Checkpoint(Event):
    type: ClassVar[str] = "checkpoint"
    step: int
    path: str
    stage: str = ""


@dataclass
class Metrics(Event):
    type: ClassVar[str] = "metrics"
    stage: str  # "base" | "finetuned" | ...
    values: dict[str, float]


@dataclass
class Oom(Event):
    """CUDA ran out of memory and the run backed off (recipes/oom.py): what changes, and where
    training continues. A consumer that predates it skips it (``read_events``)."""

    type: ClassVar[str] = "oom"
    step: int  # the optimizer step (training) or the step of the evaluation that ran out
    phase: str  # "train" | "eval"
    changes: dict[str, list[Any]]  # field -> [before, after]
    message: str  # the same in words: "batch 4→2, accumulation 8→16 (effective batch 32)"
    resume_step: int = 0  # train: the checkpoint training continues from (0 = the start)
    stage: str = ""


@dataclass
class Finished(Event):
    type: ClassVar[str] = "finished"
    step: int
    final_loss: float | None
    adapter_dir: str
    seconds: float
    report: str | None = None  # report.md, when the run had a held-out set to evaluate


@dataclass
class Stopped(Event):
    type: ClassVar[str] = "stopped"
    step: int
    checkpoint: str | None
    resume_command: str
    signal: str = "SIGINT"  # what asked for the stop: SIGINT (Ctrl-C), SIGTERM or SIGHUP


@dataclass
class Failed(Event):
    type: ClassVar[str] = "failed"
    error: str
    advice: str
    step: int | None = None


# -- experiments: several runs of one recipe (recipes/experiment.py) --------------------------
# The runs' own events carry ``variant``; these three frame them, in the experiment's
# experiment_events.jsonl and on stdout with `slothlab experiment --json`.

@dataclass
class ExperimentStarted(Event):
    type: ClassVar[str] = "experiment_started"
    experiment: str
    experiment_dir: str
    tiny: bool
    primary_metric: str
    # One entry per variant, in run order: name, overrides (as written), status.
    variants: list[dict[str, Any]]
    command: str = ""  # what runs (and continues) it
    pid: int = 0


@dataclass
class VariantEnded(Event):
    """A variant's run ended (or was found finished and skipped); ``row`` is its table row."""

    type: ClassVar[str] = "variant_ended"
    status: str  # finished | stopped | failed
    run_dir: str
    row: dict[str, Any] = field(default_factory=dict)
    skipped: bool = False  # finished by an earlier invocation: not trained again
    best: str = ""  # the best variant(s) so far by the primary metric ("a, b" when tied)


@dataclass
class ExperimentEnded(Event):
    type: ClassVar[str] = "experiment_ended"
    status: str  # finished | stopped | failed
    experiment_dir: str
    report: str  # experiment.md
    best: str = ""  # the best variant(s) by the primary metric ("" when none has it)
    resume_command: str = ""


EVENT_TYPES: dict[str, type[Event]] = {
    cls.type: cls
    for cls in (RunStarted, Preflight, Step, Eval, Checkpoint, Metrics, Oom, Finished, Stopped,
                Failed, ExperimentStarted, VariantEnded, ExperimentEnded)
}
_NESTED = {(Step, "memory"): Memory, (Eval, "samples"): Sample}
TERMINAL = ("finished", "stopped", "failed")


def event_from_dict(data: dict[str, Any]) -> Event:
    if not isinstance(data, dict):
        raise ValueError(f"not an event object: {data!r:.80}")
    cls = EVENT_TYPES.get(data.get("type", ""))
    if cls is None:
        raise ValueError(f"unknown event type {data.get('type')!r}")
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs = {k: v for k, v in data.items() if k in names}
    for (owner, name), nested in _NESTED.items():
        if owner is cls and kwargs.get(name) is not None:
            value = kwargs[name]
            kwargs[name] = [nested(**v) for v in value] if isinstance(value, list) else nested(**value)
    return cls(**kwargs)


def parse_event(line: str) -> Event:
    return event_from_dict(json.loads(line))


def read_events(path: Path) -> list[Event]:
    """Every event of a run, skipping a torn last line (a run still writing, or killed)."""
    events = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if not line:
                continue
            try:
                events.append(parse_event(line))
            except (ValueError, TypeError):
                continue
    return events


class EventWriter:
    """Appends events to ``events.jsonl`` (flushed per line) and optionally echoes them."""

    def __init__(self, path: Path | None, *, echo: TextIO | None = None,
                 variant: str = "") -> None:
        self.path = path
        # No path: events reach the listeners only (ranks > 0 of a multi-process run).
        self._fh = open(path, "a", encoding="utf-8") if path is not None else None
        self._echo = echo
        self._listeners: list[Any] = []
        self.variant = variant  # stamped on every event of an experiment's variant

    def subscribe(self, listener: Any) -> None:
        self._listeners.append(listener)

    def emit(self, event: Event) -> None:
        if self.variant and not event.variant:
            event.variant = self.variant
        line = event.to_json()
        if self._fh is not None:
            self._fh.write(line + "\n")
            self._fh.flush()
        if self._echo is not None:
            try:
                self._echo.write(line + "\n")
                self._echo.flush()
            except (BrokenPipeError, ValueError):
                # The reader (a TUI) went away: keep training; events.jsonl has everything.
                self._echo = None
        for listener in self._listeners:
            listener(event)

    def close(self) -> None:
        if self._fh is not None:
            self._fh.close()
