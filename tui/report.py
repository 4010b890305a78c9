"""What the Results screen shows: report.json when the evaluation wrote one, else the events.

report.json (written by the evaluation after a finished run)::

    {"metrics": {name: {"base", "finetuned", "change", "relative"}}, "lengths": {...},
     "samples": [{"prompt", "reference", "base", "finetuned"}],
     "artifacts": {"adapter", "report_md", "loss_png"}}

Anything missing or malformed falls back to what the event stream gives: the ``metrics``
events (base / finetuned), the final train and eval loss, the latest greedy samples.

Two losses, two splits: the before/after metrics (``eval_loss``, ``perplexity``) are measured on
the fixed eval set drawn from the test split (report.json's ``eval_set``), the run summary's
"val loss" is the trainer's last evaluation on the validation split. Both say which.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from recipes.rundir import ADAPTER, EVENTS_FILE, RECIPE_FILE
from tui import format as fmt
from tui.runstate import RunState

REPORT_FILE = "report.json"
# A relative change against a base this close to zero says nothing ("+39900%"): n/a instead.
NEAR_ZERO = 0.01
LOWER_IS_BETTER = ("loss", "perplexity")


def lower_is_better(name: str) -> bool:
    return any(word in name for word in LOWER_IS_BETTER)


def relative_change(base: float | None, change: float | None) -> float | None:
    """``change / |base|``, or None when there is no change or ``base`` is near zero."""
    if base is None or change is None or abs(base) < NEAR_ZERO:
        return None
    return change / abs(base)


@dataclass
class MetricRow:
    name: str
    base: float | None
    finetuned: float | None
    change: float | None
    relative: float | None


@dataclass
class Answer:
    prompt: str
    reference: str
    base: str | None
    finetuned: str
    stage: str = ""  # multi-stage runs: the stage whose evaluation gave it


@dataclass
class Results:
    run_dir: Path | None
    report_found: bool
    report_error: str = ""
    metrics: list[MetricRow] = field(default_factory=list)
    answers: list[Answer] = field(default_factory=list)
    artifacts: list[tuple[str, Path, bool]] = field(default_factory=list)  # label, path, exists
    summary: list[tuple[str, str]] = field(default_factory=list)  # label, value
    eval_split: str = "test"  # where the before/after metrics were measured
    eval_size: int | None = None  # examples in that eval set, when the report says
    # Multi-stage runs: what each stage measured besides the before / after (tokenizer,
    # pretrain), in the order the stages ran.
    stage_metrics: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    staged: bool = False


def _num(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def _metrics_from_report(data: dict[str, Any]) -> list[MetricRow]:
    rows = []
    for name, row in (data.get("metrics") or {}).items():
        if not isinstance(row, dict):
            continue
        base, tuned = _num(row.get("base")), _num(row.get("finetuned"))
        change = _num(row.get("change"))
        if change is None and base is not None and tuned is not None:
            change = tuned - base
        rows.append(MetricRow(str(name), base, tuned, change, relative_change(base, change)))
    return rows


def _metrics_from_events(state: RunState) -> list[MetricRow]:
    base, tuned = state.metrics.get("base", {}), state.metrics.get("finetuned", {})
    rows = []
    for name in [*base, *(k for k in tuned if k not in base)]:
        b, t = _num(base.get(name)), _num(tuned.get(name))
        change = t - b if b is not None and t is not None else None
        rows.append(MetricRow(name, b, t, change, relative_change(b, change)))
    return rows


def load_results(run_dir: Path | None, state: RunState) -> Results:
    data: dict[str, Any] = {}
    error = ""
    path = run_dir / REPORT_FILE if run_dir else None
    if path is not None and path.is_file():
        try:
            loaded = json.loads(path.read_text(encoding="utf-8"))
            data = loaded if isinstance(loaded, dict) else {}
            if not data:
                error = "report.json is not a JSON object"
        except (OSError, ValueError) as exc:
            error = f"report.json unreadable: {exc}"
    results = Results(run_dir=run_dir, report_found=bool(data), report_error=error)
    results.metrics = _metrics_from_report(data) or _metrics_from_events(state)
    eval_set = data.get("eval_set") if isinstance(data.get("eval_set"), dict) else {}
    results.eval_split = str(eval_set.get("split") or "test")
    size = eval_set.get("size")
    results.eval_size = size if isinstance(size, int) and not isinstance(size, bool) else None

    for sample in data.get("samples") or []:
        if isinstance(sample, dict):
            results.answers.append(Answer(
                prompt=str(sample.get("prompt", "")), reference=str(sample.get("reference", "")),
                base=None if sample.get("base") is None else str(sample["base"]),
                finetuned=str(sample.get("finetuned", ""))))
    results.staged = len(state.stages) > 1
    results.stage_metrics = [(stage, values) for stage, values in state.metrics.items()
                             if stage not in ("base", "finetuned")]
    if not results.answers and results.staged:  # each stage's latest samples, labelled
        results.answers = [Answer(s.prompt, s.reference, None, s.output, stage)
                           for stage, (_, samples) in state.stage_samples.items()
                           for s in samples]
    if not results.answers:
        results.answers = [Answer(s.prompt, s.reference, None, s.output) for s in state.samples]

    artifacts = data.get("artifacts") if isinstance(data.get("artifacts"), dict) else {}
    adapter = artifacts.get("adapter") or (
        getattr(state.outcome, "adapter_dir", None) or (str(run_dir / ADAPTER) if run_dir else None))
    rows: list[tuple[str, str | None]] = [
        ("adapter", adapter),
        ("report", artifacts.get("report_md") or (str(run_dir / "report.md") if run_dir else None)),
        ("loss plot", artifacts.get("loss_png") or (str(run_dir / "loss.png") if run_dir else None)),
        ("events", str(run_dir / EVENTS_FILE) if run_dir else None),
        ("recipe", str(run_dir / RECIPE_FILE) if run_dir else None),
    ]
    for label, value in rows:
        if value:
            p = Path(value)
            if run_dir is not None and not p.is_absolute() and not p.exists():
                p = run_dir / p.name if (run_dir / p.name).exists() else p
            results.artifacts.append((label, p, p.exists()))

    results.summary = [("status", state.status), ("steps", f"{state.current_step}")]
    if state.train_loss.last is not None:
        results.summary.append(("final train loss", f"{state.train_loss.last:.4f}"))
    last_eval = state.last_eval
    if last_eval is not None and last_eval.loss is not None:
        ppl = last_eval.perplexity
        results.summary.append((f"val loss @{last_eval.step}", f"{last_eval.loss:.4f}"
                                + (f" (ppl {ppl:.2f})" if ppl is not None else "")))
    # Active time over every segment: a stopped and resumed run's outcome.seconds is its last
    # segment's only.
    if state.started is not None:
        seconds = state.elapsed()
        segments = f" ({state.segments} segments)" if state.segments > 1 else ""
        results.summary.append(("run time", f"{fmt.duration(seconds)}{segments}"))
    return results
