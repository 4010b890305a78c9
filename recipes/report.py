"""The run report: the write-ups' base vs fine-tuned table, produced by every run.

Writes ``report.json`` (for the TUI and scripts), ``report.md`` (for people) and ``loss.png``
(train and eval loss) into the run directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipes import events as ev
from recipes import metrics as M
from recipes.rundir import ADAPTER, EVENTS_FILE
from recipes.schema import Recipe

LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "bleu": "BLEU",
          "chrf": "chrF", "token_f1": "Token F1", "exact_match": "Exact match",
          "accuracy": "Accuracy", "weighted_f1": "Weighted F1", "eval_loss": "Eval loss",
          "perplexity": "Perplexity"}
LOWER_IS_BETTER = {"eval_loss", "perplexity"}
SHOWN_EXAMPLES = 5


def loss_curves(run_dir: Path) -> tuple[list[tuple[int, float]], list[tuple[int, float]]]:
    """(train, eval) loss points from the event stream, last value per step (resumes overlap)."""
    train: dict[int, float] = {}
    evals: dict[int, float] = {}
    events_path = run_dir / EVENTS_FILE
    for event in ev.read_events(events_path) if events_path.exists() else []:
        if isinstance(event, ev.Step):
            train[event.step] = event.loss
        elif isinstance(event, ev.Eval) and event.loss is not None:
            evals[event.step] = event.loss
    return sorted(train.items()), sorted(evals.items())


def plot_loss(run_dir: Path, title: str) -> Path | None:
    train, evals = loss_curves(run_dir)
    if not train:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
    ax.plot(*zip(*train, strict=True), label="train", linewidth=1.4)
    if evals:
        ax.plot(*zip(*evals, strict=True), "o-", label="eval", linewidth=1.4)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = run_dir / "loss.png"
    fig.savefig(path)
    plt.close(fig)
    return path


def _fmt(value: float | None, name: str = "") -> str:
    if value is None:
        return "–"
    if name in ("bleu", "chrf"):
        return f"{value:.2f}"
    return f"{value:.4f}"


def _pct(relative: float | None) -> str:
    return "–" if relative is None else f"{relative * 100:+.1f}%"


def build_report(run_dir: Path, recipe: Recipe, items: list, base: Any, tuned: Any) -> dict:
    names = list(dict.fromkeys([*(base.metrics if base else {}), *tuned.metrics]))
    table = {}
    for name in names:
        b = base.metrics.get(name) if base else None
        t = tuned.metrics.get(name)
        table[name] = {"base": b, "finetuned": t, **M.change(b, t),
                       "lower_is_better": name in LOWER_IS_BETTER}
    refs = [it.reference for it in items]
    lengths = {"reference": M.length_stats(refs), "finetuned": M.length_stats(tuned.outputs)}
    if base:
        lengths["base"] = M.length_stats(base.outputs)
    per_example = ("rougeL", "rouge1", "rouge2", "token_f1", "exact_match")
    primary = next((m for m in per_example if m in recipe.metrics), "rougeL")
    samples = []
    for i, it in enumerate(items):
        sample = {"row": it.row, "prompt": it.question, "reference": it.reference,
                  "finetuned": tuned.outputs[i], "finetuned_score": tuned.per_example[i][primary]}
        if base:
            sample["base"] = base.outputs[i]
            sample["base_score"] = base.per_example[i][primary]
            sample["delta"] = sample["finetuned_score"] - sample["base_score"]
        samples.append(sample)
    ranked = sorted((s for s in samples if "delta" in s), key=lambda s: s["delta"])
    improved = [s for s in reversed(ranked) if s["delta"] > 0][:SHOWN_EXAMPLES]
    worse = [s for s in ranked if s["delta"] < 0][:SHOWN_EXAMPLES]
    return {
        "recipe": recipe.name, "model": recipe.model, "tiny": recipe.tiny,
        "eval_set": {"split": "test", "size": len(items), "max_new_tokens": recipe.max_new_tokens,
                     "decoding": "greedy"},
        "primary_metric": primary,
        "metrics": table,
        "lengths": lengths,
        "samples": samples,
        "improved": improved,
        "worse": worse,
        "artifacts": {"adapter": str(run_dir / ADAPTER), "report_md": str(run_dir / "report.md"),
                      "report_json": str(run_dir / "report.json"),
                      "loss_png": str(run_dir / "loss.png")},
    }


def render_markdown(report: dict, has_plot: bool) -> str:
    lines = [f"# {report['recipe']}: base vs fine-tuned", ""]
    size = report["eval_set"]["size"]
    lines += [f"Model `{report['model']}`{' (tiny mode)' if report['tiny'] else ''}. "
              f"{size} held-out examples, greedy decoding, up to "
              f"{report['eval_set']['max_new_tokens']} new tokens.", ""]
    lines += ["| Metric | Base | Fine-tuned | Change | Relative |", "|---|---|---|---|---|"]
    for name, row in report["metrics"].items():
        change = "–" if row["change"] is None else f"{row['change']:+.4f}"
        lines.append(f"| {LABELS.get(name, name)} | {_fmt(row['base'], name)} | "
                     f"{_fmt(row['finetuned'], name)} | {change} | {_pct(row['relative'])} |")
    if "perplexity" in report["metrics"] or "eval_loss" in report["metrics"]:
        lines += ["", "Eval loss and perplexity: lower is better."]
    lengths = report["lengths"]
    cols = [c for c in ("base", "finetuned", "reference") if c in lengths]
    lines += ["", "## Response length (words)", "",
              "| | " + " | ".join(c.replace("finetuned", "fine-tuned").capitalize() for c in cols) + " |",
              "|---|" + "---|" * len(cols)]
    for stat, label in (("mean_words", "Mean"), ("median_words", "Median")):
        lines.append(f"| {label} | " + " | ".join(f"{lengths[c][stat]:.1f}" for c in cols) + " |")
    if has_plot:
        lines += ["", "## Loss", "", "![loss](loss.png)"]
    primary = LABELS.get(report["primary_metric"], report["primary_metric"])
    for title, key in (("Most improved", "improved"), ("Got worse", "worse")):
        if not report[key]:
            continue
        lines += ["", f"## {title} (by {primary})", ""]
        for s in report[key]:
            lines += [f"**Row {s['row']}** ({primary} {s['base_score']:.3f} → "
                      f"{s['finetuned_score']:.3f})", "",
                      "| | |", "|---|---|",
                      f"| Prompt | {_cell(s['prompt'])} |",
                      f"| Reference | {_cell(s['reference'])} |",
                      f"| Base | {_cell(s['base'])} |",
                      f"| Fine-tuned | {_cell(s['finetuned'])} |", ""]
    lines += ["", f"Adapter: `{report['artifacts']['adapter']}`", ""]
    return "\n".join(lines)


def _cell(text: str, limit: int = 400) -> str:
    from recipes.safe_text import safe_text

    text = text if len(text) <= limit else text[:limit] + " …"
    return safe_text(text).replace("|", "\\|").replace("\n", "<br>") or "*(empty)*"


def write_report(run_dir: Path, recipe: Recipe, items: list, base: Any, tuned: Any) -> dict:
    report = build_report(run_dir, recipe, items, base, tuned)
    plot = plot_loss(run_dir, f"{recipe.name}: loss")
    (run_dir / "report.json").write_text(json.dumps(report, ensure_ascii=False, indent=1),
                                         encoding="utf-8")
    (run_dir / "report.md").write_text(render_markdown(report, plot is not None), encoding="utf-8")
    return report


def metrics_table(report: dict) -> Any:
    from rich.table import Table

    table = Table(title=f"{report['recipe']}: base vs fine-tuned "
                        f"({report['eval_set']['size']} held-out examples)", title_justify="left")
    for col in ("metric", "base", "fine-tuned", "change", "relative"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, row in report["metrics"].items():
        better = row["change"] is not None and (
            row["change"] < 0 if row["lower_is_better"] else row["change"] > 0)
        style = "green" if better else ("red" if row["change"] else "")
        change = "–" if row["change"] is None else f"{row['change']:+.4f}"
        table.add_row(LABELS.get(name, name), _fmt(row["base"], name),
                      _fmt(row["finetuned"], name), f"[{style}]{change}[/]" if style else change,
                      _pct(row["relative"]))
    return table
