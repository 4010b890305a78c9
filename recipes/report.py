"""The run report, one builder for every recipe: each stage's summary, base vs fine-tuned.

Writes ``report.json`` (for the TUI and scripts), ``report.md`` (for people) and ``loss.png``
(train and eval loss, one panel per trained stage; staged runs also get ``loss_<stage>.png``)
from the stages' ``done.json`` summaries and the event stream. A one-stage recipe's report is
its finetune section; a staged recipe's adds the stage table and a section per stage.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from recipes import distributed
from recipes import events as ev
from recipes import metrics as M
from recipes.numbers import change, metric_value, relative
from recipes.rundir import ADAPTER, EVENTS_FILE, read_done, stage_folder, write_json
from recipes.safe_text import safe_text
from recipes.schema import Recipe

LABELS = {"rouge1": "ROUGE-1", "rouge2": "ROUGE-2", "rougeL": "ROUGE-L", "bleu": "BLEU",
          "chrf": "chrF", "token_f1": "Token F1", "exact_match": "Exact match",
          "accuracy": "Accuracy", "weighted_f1": "Weighted F1", "eval_loss": "Eval loss",
          "perplexity": "Perplexity"}
LOWER_IS_BETTER = {"eval_loss", "perplexity"}
SHOWN_EXAMPLES = 5
STAGE_TITLES = {"tokenizer": "Tokenizer", "pretrain": "Pretraining",
                "finetune": "Fine-tuning (LoRA)"}
LANG_NAMES = {"as": "Assamese", "hi": "Hindi", "en": "English"}


def stage_names(recipe: Recipe) -> list[str]:
    return list(recipe.stages) or ["finetune"]


def stage_curves(run_dir: Path, stage: str = "") -> tuple[list[tuple[int, float]],
                                                          list[tuple[int, float, dict]]]:
    """(train, eval) points of one stage ("" = a one-stage run) from the event stream; the last
    value per step wins (a resumed stage repeats the steps after its checkpoint)."""
    train: dict[int, float] = {}
    evals: dict[int, tuple[float, dict[str, float]]] = {}
    path = run_dir / EVENTS_FILE
    for event in ev.read_events(path) if path.exists() else []:
        if getattr(event, "stage", None) != stage:
            continue
        if isinstance(event, ev.Step) and event.loss is not None:
            train[event.step] = event.loss
        elif isinstance(event, ev.Eval) and event.loss is not None:
            evals[event.step] = (event.loss, event.subset_losses)
    return sorted(train.items()), [(s, loss, parts) for s, (loss, parts) in sorted(evals.items())]


def plot_losses(run_dir: Path, recipe: Recipe) -> dict[str, str]:
    """loss.png (a panel per trained stage) and, for staged runs, loss_<stage>.png each."""
    curves = {s: stage_curves(run_dir, s if recipe.stages else "") for s in stage_names(recipe)}
    curves = {s: c for s, c in curves.items() if c[0]}
    if not curves:
        return {}
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def draw(axes: Any, stage: str, title: str) -> None:
        train, evals = curves[stage]
        axes.plot(*zip(*train, strict=True), label="train", linewidth=1.4)
        if evals:
            axes.plot([s for s, _, _ in evals], [x for _, x, _ in evals], "o-", label="eval",
                      linewidth=1.4)
            for name in sorted({k for _, _, parts in evals for k in parts}):
                points = [(s, parts[name]) for s, _, parts in evals if name in parts]
                axes.plot(*zip(*points, strict=True), "--", marker=".", linewidth=1,
                          label=f"eval: {name}")
        axes.set(xlabel="step", ylabel="loss", title=title)
        axes.grid(alpha=0.3)
        axes.legend(fontsize=8)

    written: dict[str, str] = {}
    if recipe.stages:
        for stage in curves:
            fig, ax = plt.subplots(figsize=(7, 4), dpi=110)
            draw(ax, stage, f"{recipe.name}: {STAGE_TITLES[stage].lower()}")
            fig.tight_layout()
            fig.savefig(run_dir / f"loss_{stage}.png")
            plt.close(fig)
            written[stage] = str(run_dir / f"loss_{stage}.png")
    fig, axes = plt.subplots(1, len(curves), figsize=(7 * len(curves), 4), dpi=110, squeeze=False)
    for ax, stage in zip(axes[0], curves, strict=True):
        draw(ax, stage, STAGE_TITLES[stage] if recipe.stages else f"{recipe.name}: loss")
    fig.tight_layout()
    fig.savefig(run_dir / "loss.png")
    plt.close(fig)
    written["all"] = str(run_dir / "loss.png")
    return written


def build_table(recipe: Recipe, items: list, base: Any, tuned: Any) -> dict[str, Any]:
    """Base vs fine-tuned on the eval set: metrics, lengths, every answer, the best and worst."""
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
    return {
        "eval_set": {"split": "test", "size": len(items), "max_new_tokens": recipe.max_new_tokens,
                     "decoding": "greedy"},
        "primary_metric": primary, "metrics": table, "lengths": lengths, "samples": samples,
        "improved": [s for s in reversed(ranked) if s["delta"] > 0][:SHOWN_EXAMPLES],
        "worse": [s for s in ranked if s["delta"] < 0][:SHOWN_EXAMPLES],
    }


def build_report(run_dir: Path, recipe: Recipe) -> dict[str, Any]:
    """report.json's content from the finished stages' summaries and the event stream."""
    stages: dict[str, dict[str, Any]] = {}
    for stage in stage_names(recipe):
        done = read_done(stage_folder(run_dir, stage, staged=bool(recipe.stages)))
        if done is None:
            continue
        train, evals = stage_curves(run_dir, stage if recipe.stages else "")
        if train:
            done["curve"] = {"train": train, "eval": [[s, x, parts] for s, x, parts in evals]}
            done["train_loss_first"], done["train_loss_last"] = train[0][1], train[-1][1]
        stages[stage] = done
    report: dict[str, Any] = {"recipe": recipe.name, "model": recipe.model, "tiny": recipe.tiny,
                              "stages_run": stage_names(recipe), "stages": stages}
    table = stages.get("finetune", {}).get("table")
    if table:
        report.update(table)  # the base vs fine-tuned table front ends read
    report["artifacts"] = {
        **({"adapter": str(run_dir / ADAPTER)} if "finetune" in stages else {}),
        "report_md": str(run_dir / "report.md"), "report_json": str(run_dir / "report.json"),
        "loss_png": str(run_dir / "loss.png"),
        **({f"{s}_dir": str(stage_folder(run_dir, s, staged=True)) for s in stages}
           if recipe.stages else {})}
    return report


def write_report(run_dir: Path, recipe: Recipe) -> dict[str, Any]:
    """report.json, report.md and the loss plots; returns the report."""
    if not distributed.is_main():  # torchrun: rank 0 alone writes the run directory
        return {}
    plots = plot_losses(run_dir, recipe)
    report = build_report(run_dir, recipe)
    report["artifacts"].update({f"loss_{k}_png": v for k, v in plots.items() if k != "all"})
    write_json(run_dir / "report.json", report)
    (run_dir / "report.md").write_text(render_markdown(report, plots), encoding="utf-8")
    return report


# --------------------------------------------------------------------------------- markdown

def _cell(text: str, limit: int = 400) -> str:
    """Text for a markdown table cell: control characters shown as escapes (model output may
    hold them), <mask> and other markers shown, not read as HTML."""
    text = safe_text(text if len(text) <= limit else text[:limit] + " …")
    text = text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return text.replace("|", "\\|").replace("\n", "<br>") or "*(empty)*"


def render_markdown(report: dict[str, Any], plots: dict[str, str]) -> str:
    stages = report["stages"]
    staged = report["stages_run"] != ["finetune"]
    title = (", ".join(STAGE_TITLES[s].split(" (")[0].lower() for s in report["stages_run"])
             if staged else "base vs fine-tuned")
    lines = [f"# {safe_text(report['recipe'])}: {title}", "",
             f"Model `{safe_text(report['model'])}`{' (tiny mode)' if report['tiny'] else ''}."
             + (f" Stages in this run: {', '.join(report['stages_run'])}." if staged else ""), ""]
    if staged:
        lines += ["| Stage | Seconds | Output |", "|---|---|---|"]
        for name, done in stages.items():
            output = done.get("folder") or done.get("model_dir") or done.get("adapter_dir")
            lines.append(f"| {name} | {done.get('seconds', 0):.1f} | `{safe_text(str(output))}` |")
        lines.append("")
    for number, name in enumerate(report["stages_run"], start=1):
        if name not in stages:
            continue
        heading = [f"## {number}. {STAGE_TITLES[name]}", ""] if staged else []
        plot = plots.get(name if staged else "all")
        section = {"tokenizer": _tokenizer_md, "pretrain": _pretrain_md,
                   "finetune": _finetune_md}[name]
        lines += heading + section(stages[name], report, plot)
    lines += ["## Artifacts", ""]
    lines += [f"- {name}: `{safe_text(path)}`" for name, path in report["artifacts"].items()]
    lines.append("")
    return "\n".join(lines)


def _settings_md(summary: dict[str, Any]) -> list[str]:
    """What really ran (read from the live model and trainer), and what differed from the recipe."""
    settings = summary.get("settings") or {}
    if not settings:
        return []
    lines = ["What ran (read from the live model and trainer):", "", "| Setting | Value |",
             "|---|---|"]
    lines += [f"| {name} | {_cell(value)} |" for name, value in settings.items()]
    lines += [""] + [f"- changed: {_cell(note)}" for note in summary.get("changes", [])]
    return lines + ([""] if summary.get("changes") else [])


def _tokenizer_md(tok: dict[str, Any], report: dict[str, Any], plot: str | None) -> list[str]:
    sampled = ", ".join(f"{lang} {n} ({tok['sampled_share'][lang]:.0%})"
                        for lang, n in tok["sampled"].items())
    lines = [f"SentencePiece BPE, vocabulary {tok['vocab_size']} (asked "
             f"{tok['requested_vocab_size']}), byte fallback, Gemma special tokens. Sentences "
             f"sampled: {sampled}; trained on the {tok['splits']['train']} training sentences.",
             "", f"Fertility on {tok['fertility_on']}:", "",
             "| Language | Sentences | Words | Tokens | Tokens / sentence | Tokens / word | "
             "Characters / token | Byte-fallback tokens |", "|---|---|---|---|---|---|---|---|"]
    for lang, row in tok["fertility"].items():
        lines.append(f"| {LANG_NAMES.get(lang, lang)} | {row['sentences']} | {row['words']} | "
                     f"{row['tokens']} | {row['tokens_per_sentence']:.1f} | "
                     f"{row['tokens_per_word']:.2f} | {row['chars_per_token']:.2f} | "
                     f"{row['byte_fallback_share']:.1%} |")
    return lines + [f"- note: {n}" for n in tok.get("notes", [])] + [""]


def _pretrain_md(pre: dict[str, Any], report: dict[str, Any], plot: str | None) -> list[str]:
    sizes = pre["sizes"]
    lines = [f"`Gemma3ForCausalLM` from a config, {pre['parameters']:,} parameters (hidden "
             f"{sizes['hidden_size']}, {sizes['num_layers']} layers, {sizes['num_heads']} heads / "
             f"{sizes['num_kv_heads']} KV, head {sizes['head_dim']}, MLP "
             f"{sizes['intermediate_size']}, vocab {pre['vocab_size']}); causal LM loss on every "
             f"token, all parameters, {pre['optimizer']} at {pre['learning_rate']:g}; "
             f"{pre['train_tokens']:,} tokens in {pre['blocks']} blocks of {pre['block_size']}.",
             "", "| | Value |", "|---|---|", f"| Steps | {pre['steps']} |",
             f"| Train loss (first → last) | {metric_value(pre.get('train_loss_first'))} → "
             f"{metric_value(pre.get('train_loss_last'))} |",
             f"| Eval loss | {metric_value(pre['eval_loss'])} |",
             f"| Eval perplexity | {metric_value(pre['perplexity'], 'perplexity')} |", "",
             *_settings_md(pre)]
    if pre["eval_loss_by_language"]:
        lines += ["| Language | Eval loss | Perplexity |", "|---|---|---|"]
        lines += [f"| {LANG_NAMES.get(lang, lang)} | {metric_value(loss)} | "
                  f"{pre['perplexity_by_language'][lang]:.2f} |"
                  for lang, loss in pre["eval_loss_by_language"].items()]
        lines.append("")
    if plot:
        lines += [f"![pretraining loss]({Path(plot).name})", ""]
    if pre.get("samples"):
        lines += ["Greedy continuations of held-out sentences (last eval):", "",
                  "| Prompt | Reference | Output |", "|---|---|---|"]
        lines += [f"| {_cell(x['prompt'])} | {_cell(x['reference'])} | {_cell(x['output'])} |"
                  for x in pre["samples"]]
        lines.append("")
    return lines


def _finetune_md(fine: dict[str, Any], report: dict[str, Any], plot: str | None) -> list[str]:
    lines: list[str] = []
    lora = fine.get("lora")
    if lora and report["stages_run"] != ["finetune"]:
        lines += [f"LoRA r={lora['r']}, alpha={lora['alpha']} on "
                  f"{safe_text(', '.join(lora['target_modules']))} of `{safe_text(fine['base_model'])}` "
                  f"({'4-bit' if lora['load_in_4bit'] else 'unquantised'}); loss on the "
                  f"responses only; {fine['steps']} steps. Base = that model with the adapter "
                  "off.", ""]
    table = fine.get("table")
    if table:
        lines += [f"{table['eval_set']['size']} held-out examples, greedy decoding, up to "
                  f"{table['eval_set']['max_new_tokens']} new tokens.", "",
                  "| Metric | Base | Fine-tuned | Change | Relative |", "|---|---|---|---|---|"]
        for name, row in table["metrics"].items():
            lines.append(f"| {LABELS.get(name, name)} | {metric_value(row['base'], name)} | "
                         f"{metric_value(row['finetuned'], name)} | {change(row['change'])} | "
                         f"{relative(row['relative'])} |")
        if "perplexity" in table["metrics"] or "eval_loss" in table["metrics"]:
            lines += ["", "Eval loss and perplexity: lower is better."]
        lines.append("")
    if fine.get("tasks"):
        lines += ["| Task | Metric | Base | Fine-tuned | Change |", "|---|---|---|---|---|"]
        for task, scores in fine["tasks"].items():
            lines += [f"| {task} | {LABELS.get(name, name)} | {metric_value(row['base'], name)} | "
                      f"{metric_value(row['finetuned'], name)} | {change(row['change'])} |"
                      for name, row in scores["metrics"].items()]
        lines.append("")
    if table:
        lengths = table["lengths"]
        cols = [c for c in ("base", "finetuned", "reference") if c in lengths]
        lines += ["## Response length (words)", "",
                  "| | " + " | ".join(c.replace("finetuned", "fine-tuned").capitalize()
                                     for c in cols) + " |", "|---|" + "---|" * len(cols)]
        for stat, label in (("mean_words", "Mean"), ("median_words", "Median")):
            lines.append(f"| {label} | " + " | ".join(f"{lengths[c][stat]:.1f}" for c in cols)
                         + " |")
        lines.append("")
    lines += _settings_md(fine)
    if plot:
        lines += ["## Loss", "", f"![loss]({Path(plot).name})", ""]
    primary = LABELS.get(table["primary_metric"], table["primary_metric"]) if table else ""
    for title, key in (("Most improved", "improved"), ("Got worse", "worse")):
        for i, s in enumerate((table or {}).get(key, [])):
            lines += ([f"## {title} (by {primary})", ""] if i == 0 else []) + [
                f"**Row {s['row']}** ({primary} {s['base_score']:.3f} → "
                f"{s['finetuned_score']:.3f})", "", "| | |", "|---|---|",
                f"| Prompt | {_cell(s['prompt'])} |", f"| Reference | {_cell(s['reference'])} |",
                f"| Base | {_cell(s['base'])} |", f"| Fine-tuned | {_cell(s['finetuned'])} |", ""]
    return lines

