"""The experiment's comparison: experiment.json, experiment.md and losses.png, from its runs.

One row per variant, read from the variant's run directory (events.jsonl, report.json): what it
changes (the effective values of the fields it overrides), status, steps, final train and
validation loss, every metric base vs fine-tuned with the absolute and relative change (as seed
001 tabulates them), wall time (active time of every segment of a resumed run), peak memory
(the CUDA peak on a GPU; on a CPU the largest process RSS sampled at its logged steps) and
where its base evaluation came from. The best variant
by the primary metric is marked. Rewritten after every variant, so a stopped experiment's table
shows what has finished.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes import experiment_dir as xp
from recipes.experiment_dir import REPORT_JSON
from recipes.experiment_spec import Experiment, Variant, describe_overrides
from recipes.numbers import change, metric_value, relative
from recipes.report import LABELS, LOWER_IS_BETTER, stage_curves
from recipes.rundir import EVENTS_FILE, write_json

REPORT_MD, LOSSES_PNG = "experiment.md", "losses.png"


def effective(variant: Variant) -> dict[str, Any]:
    """The values the variant's run uses for the fields it overrides (tiny mode applied)."""
    keys = [k for k in variant.overrides if k != "tiny_overrides"]
    if variant.recipe.tiny:
        keys += [k for k in variant.overrides.get("tiny_overrides", {}) if k not in keys]
    values = variant.recipe.to_dict()
    return {k: values[k] for k in keys}


def _segments_seconds(events: list[ev.Event]) -> float:
    """Active time: each run_started to the next terminal event (or the last event seen)."""
    total, start, last = 0.0, None, None
    for event in events:
        if isinstance(event, ev.RunStarted):
            if start is not None and last is not None:
                total += max(0.0, last - start)
            start = event.time
        elif event.type in ev.TERMINAL and start is not None:
            total += max(0.0, event.time - start)
            start = None
        last = event.time
    if start is not None and last is not None:
        total += max(0.0, last - start)
    return total


def variant_row(folder: Path, variant: Variant) -> dict[str, Any]:
    row: dict[str, Any] = {
        "variant": variant.name, "overrides": variant.overrides, "effective": effective(variant),
        "status": "pending", "run_dir": None, "steps": 0, "total_steps": None,
        "train_loss": None, "val_loss": None, "metrics": {}, "wall_seconds": None,
        "peak_memory_mb": None, "memory": "", "base_eval": "", "best": False}
    run_dir = xp.current_run(folder, variant.folder)
    if run_dir is None:
        return row
    events = ev.read_events(run_dir / EVENTS_FILE)
    stage = "finetune" if variant.recipe.stages else ""
    train, evals = stage_curves(run_dir, stage)
    steps = [e for e in events if isinstance(e, ev.Step) and e.stage == stage]
    memory = [e.memory for e in events if isinstance(e, ev.Step) and e.memory is not None]
    report_path = run_dir / "report.json"
    report = json.loads(report_path.read_text(encoding="utf-8")) if report_path.is_file() else {}
    ends = [e for e in events if e.type in ev.TERMINAL]
    source = xp.base_eval_source(folder, variant, run_dir)
    row.update({
        "status": xp.run_status(run_dir), "run_dir": str(run_dir),
        "steps": max([s for s, _ in train] + [getattr(e, "step", 0) or 0 for e in ends
                                              if e.type != "failed"] + [0]),
        "total_steps": steps[-1].total_steps if steps else None,
        "train_loss": train[-1][1] if train else None,
        "val_loss": evals[-1][1] if evals else None,
        "metrics": report.get("metrics", {}),
        "wall_seconds": _segments_seconds(events),
        # VRAM: the CUDA peak (reset between variants). RAM: the process's high-water mark
        # spans every variant before, so the largest RSS sampled at this variant's steps.
        "peak_memory_mb": max((m.now_mb if m.kind == "rss" else max(m.peak_mb, m.now_mb)
                               for m in memory), default=None),
        "memory": memory[-1].kind if memory else "",
        "base_eval": ("" if not source else "computed" if source == variant.name
                      else f"shared from {source}"),
        "report": str(run_dir / "report.md") if (run_dir / "report.md").is_file() else None,
    })
    return row


def primary_metric(experiment: Experiment) -> str:
    """The experiment's choice, else its recipe's first metric (known before anything runs)."""
    if experiment.primary_metric:
        return experiment.primary_metric
    return experiment.variants[0].recipe.metrics[0] if experiment.variants else "eval_loss"


def mark_best(rows: list[dict[str, Any]], metric: str) -> str:
    """Marks the finished variant(s) with the best fine-tuned ``metric`` and returns their
    names ("a, b" for a tie: every tied one is marked, none is picked by its position). When
    every variant ties (all at ROUGE-2 0 after a few tiny steps) none is marked: a star on all
    of them would say nothing."""
    lower = metric in LOWER_IS_BETTER
    scored = [(r["metrics"][metric]["finetuned"], r) for r in rows
              if r["status"] == "finished" and r["metrics"].get(metric, {}).get("finetuned")
              is not None]
    if not scored:
        return ""
    best = (min if lower else max)(value for value, _ in scored)
    winners = [r for value, r in scored if value == best]
    if len(winners) == len(scored) > 1:
        return ""
    for row in winners:
        row["best"] = True
    return ", ".join(r["variant"] for r in winners)


def build_table(folder: Path, experiment: Experiment) -> dict[str, Any]:
    rows = [variant_row(folder, v) for v in experiment.variants]
    metric = primary_metric(experiment)
    best = mark_best(rows, metric)
    return {
        "experiment": experiment.name, "description": experiment.description,
        "file": str(experiment.path), "recipe": str(experiment.recipe_path),
        "tiny": experiment.tiny, "command": experiment.command, "set": experiment.sets,
        "primary_metric": metric, "lower_is_better": metric in LOWER_IS_BETTER, "best": best,
        "labels": {n: label(n) for n in dict.fromkeys([metric, *(k for r in rows
                                                              for k in r["metrics"])])},
        "rows": rows,
        "artifacts": {"experiment_md": str(folder / REPORT_MD),
                      "experiment_json": str(folder / REPORT_JSON),
                      "losses_png": str(folder / LOSSES_PNG)}}


def write_experiment_report(folder: Path, experiment: Experiment) -> dict[str, Any]:
    """experiment.json, experiment.md and losses.png; returns the table."""
    table = build_table(folder, experiment)
    plotted = plot_losses(folder, experiment, table["rows"])
    write_json(folder / REPORT_JSON, table)
    (folder / REPORT_MD).write_text(render_markdown(table, plotted), encoding="utf-8")
    return table


# ------------------------------------------------------------------------------ the plot

def plot_losses(folder: Path, experiment: Experiment, rows: list[dict[str, Any]]) -> bool:
    """losses.png: each variant's train curve (solid) and eval curve (dashed), one colour each."""
    curves = []
    for variant, row in zip(experiment.variants, rows, strict=True):
        if row["run_dir"]:
            train, evals = stage_curves(Path(row["run_dir"]),
                                        "finetune" if variant.recipe.stages else "")
            if train:
                curves.append((variant.name, train, evals))
    if not curves:
        return False
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for i, (name, train, evals) in enumerate(curves):
        colour = colours[i % len(colours)]
        ax.plot(*zip(*train, strict=True), color=colour, linewidth=1.3, label=f"{name} train")
        if evals:
            ax.plot([s for s, _, _ in evals], [x for _, x, _ in evals], "o--", color=colour,
                    linewidth=1.1, markersize=3.5, label=f"{name} eval")
    title = f"{experiment.name}{' (tiny mode)' if experiment.tiny else ''}: loss per variant"
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2 if len(curves) > 3 else 1)
    fig.tight_layout()
    fig.savefig(folder / LOSSES_PNG)
    plt.close(fig)
    return True


# ------------------------------------------------------------------------------ markdown

def duration(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    seconds = round(seconds)
    if seconds < 60:
        return f"{seconds}s"
    minutes, secs = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    return f"{minutes // 60}h {minutes % 60:02d}m"


def memory(row: dict[str, Any]) -> str:
    if row["peak_memory_mb"] is None:
        return "–"
    label = "VRAM" if row["memory"] == "vram" else "RAM (RSS)"
    return f"{label} {row['peak_memory_mb'] / 1024:.2f} GiB"


def label(name: str) -> str:
    return LABELS.get(name, name)


def _metric_cell(metric: dict[str, Any] | None, name: str) -> str:
    if not metric or metric.get("finetuned") is None:
        return "–"
    return (f"{metric_value(metric['finetuned'], name)} ({change(metric.get('change'))}, "
            f"{relative(metric.get('relative'))})")


def _bases(rows: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
    """(label, base values) per distinct base evaluation: one 'base' row when all share it."""
    groups: list[tuple[list[str], dict[str, Any]]] = []
    for row in rows:
        values = {k: m.get("base") for k, m in row["metrics"].items()}
        if not values:
            continue
        for names, known in groups:
            if known == values:
                names.append(row["variant"])
                break
        else:
            groups.append(([row["variant"]], values))
    if len(groups) == 1:
        return [("base", groups[0][1])]
    return [(f"base of {', '.join(names)}", values) for names, values in groups]


def render_markdown(table: dict[str, Any], plotted: bool) -> str:
    rows, metric = table["rows"], table["primary_metric"]
    tiny = " (tiny mode)" if table["tiny"] else ""
    sets = "".join(f" `--set {s}`" for s in table["set"])
    lines = [f"# Experiment {table['experiment']}{tiny}", ""]
    if table["description"]:
        lines += [table["description"], ""]
    lines += [f"Base recipe `{table['recipe']}`; {len(rows)} variants, run one after another"
              + (f"; every variant with{sets}" if sets else "") + ".",
              f"Command: `{table['command']}`. Primary metric: {label(metric)}"
              f"{' (lower is better)' if table['lower_is_better'] else ''}; "
              "★ marks the best fine-tuned value.", "",
              f"| Variant | What it changes | Status | Steps | Train loss | Val loss | "
              f"{label(metric)} | Change | Relative | Wall time | Peak memory |",
              "|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        m = row["metrics"].get(metric) or {}
        steps = str(row["steps"]) if row["status"] == "finished" else \
            f"{row['steps']}/{row['total_steps'] or '?'}"
        lines.append(
            f"| {'★ ' if row['best'] else ''}{row['variant']} | "
            f"{describe_overrides(row['effective'])} | {row['status']} | {steps} | "
            f"{metric_value(row['train_loss'])} | {metric_value(row['val_loss'])} | "
            f"{metric_value(m.get('finetuned'), metric)} | {change(m.get('change'))} | "
            f"{relative(m.get('relative'))} | "
            f"{duration(row['wall_seconds'])} | {memory(row)} |")
    names = list(dict.fromkeys(n for r in rows for n in r["metrics"]))
    if names:
        lines += ["", "## Every metric, base vs fine-tuned", "",
                  "Fine-tuned value (change, relative change) against the base model, which is "
                  "the same weights with the adapter off. Eval loss and perplexity: lower is "
                  "better.", "",
                  "| | " + " | ".join(label(n) for n in names) + " |",
                  "|---|" + "---|" * len(names)]
        for name, values in _bases(rows):
            lines.append(f"| {name} | " + " | ".join(metric_value(values.get(n), n) for n in names)
                         + " |")
        for row in rows:
            if row["metrics"]:
                lines.append(f"| {'★ ' if row['best'] else ''}{row['variant']} | " + " | ".join(
                    _metric_cell(row["metrics"].get(n), n) for n in names) + " |")
    computed = [r["variant"] for r in rows if r["base_eval"] == "computed"]
    shared = [r["variant"] for r in rows if r["base_eval"].startswith("shared")]
    if computed:
        lines += ["", f"Base evaluation computed by {', '.join(computed)}"
                  + (f"; reused by {', '.join(shared)} (same base model and eval set)."
                     if shared else ".")]
    if plotted:
        lines += ["", "## Loss", "", f"![losses]({LOSSES_PNG})"]
    lines += ["", "## Runs", ""]
    for r in rows:
        if r["run_dir"]:
            run = _relative(Path(r["run_dir"]), Path(table["artifacts"]["experiment_md"]).parent)
            lines.append(f"- {r['variant']}: `{run}`" + (f" ([report]({run}/report.md))"
                                                         if r.get("report") else ""))
    return "\n".join(lines) + "\n"


def _relative(path: Path, folder: Path) -> str:
    try:
        return str(path.resolve().relative_to(folder.resolve()))
    except ValueError:
        return str(path)
