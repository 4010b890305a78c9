"""A run's fixed eval prompts, for chat: rebuilt as the eval built them, with its answers.

    from recipes.eval_prompts import load_eval_prompts
    prompts, note = load_eval_prompts(trained)    # [EvalPrompt ...], "" or why they are partial

The eval set is the first ``eval_samples`` examples of the seeded test split (recipes/evaluate.py).
Rebuilding it from the run's data gives each prompt exactly as the eval asked it: its system
message and earlier turns, its instruction and input for a prompt_template, and the label
strings a classification task picks among. The eval's answers (base and fine-tuned) come from
the run's report.json, matched by position and row. Staged recipes (gemma3-scratch) build
their test prompts inside their stages; for them, and when the data cannot be read any more,
the prompts come from report.json alone (its single-turn questions).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from recipes.chat import EvalPrompt
from recipes.errors import SlothlabError

REPORT = "report.json"


def report_samples(run_dir: Path) -> list[dict[str, Any]]:
    try:
        report = json.loads((run_dir / REPORT).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    samples = report.get("samples") if isinstance(report, dict) else None
    return samples if isinstance(samples, list) else []


def _eval_answers(sample: dict[str, Any], with_tuned: bool) -> dict[str, str]:
    answers = {"base": sample.get("base"), "tuned": sample.get("finetuned") if with_tuned else None}
    return {k: v for k, v in answers.items() if isinstance(v, str)}


def from_data(trained: Any) -> list[EvalPrompt]:
    """The eval set rebuilt from the run's data (the run's recipe, split and renderer)."""
    from recipes.data.prepare import load_examples, split
    from recipes.evaluate import build_eval_set, label_sets
    from recipes.host import PROJECT_ROOT
    from recipes.schema import data_source

    recipe = trained.recipe
    loaded = load_examples(recipe, data_source(recipe), base_dirs=[PROJECT_ROOT])
    test = split(loaded.examples, recipe).test[:recipe.eval_samples]
    items = build_eval_set(test, trained.renderer, recipe.eval_samples)
    labels = label_sets(loaded.examples, recipe.classification_tasks)
    prompts = []
    for i, (ex, item) in enumerate(zip(test, items, strict=True)):
        last = max(k for k, m in enumerate(ex.messages) if m["role"] == "assistant")
        fields = None
        if trained.renderer.prompt_template:
            fields = {k: v for k, v in trained.renderer.prompt_fields(ex).items()
                      if k != "response"}
        is_cls = item.task in recipe.classification_tasks
        prompts.append(EvalPrompt(
            index=i, row=item.row, question=item.question, reference=item.reference,
            history=ex.messages[:last], fields=fields, task=item.task, lang=item.lang,
            labels=labels.get((item.task, item.lang), [""]) if is_cls else []))
    return prompts


def from_report(samples: list[dict[str, Any]], prompt_template: bool) -> list[EvalPrompt]:
    """Prompts from report.json alone: each question as one user turn (no system message)."""
    prompts = []
    for i, s in enumerate(samples):
        question = str(s.get("prompt", ""))
        prompts.append(EvalPrompt(
            index=i, row=int(s.get("row", i + 1)), question=question,
            reference=str(s.get("reference", "")),
            history=[{"role": "user", "content": question}],
            fields={"instruction": question, "input": ""} if prompt_template else None))
    return prompts


def load_eval_prompts(trained: Any) -> tuple[list[EvalPrompt], str]:
    """(prompts, note): the note says where they came from when it is not the data."""
    samples = report_samples(trained.run_dir)
    prompt_template = bool(trained.renderer.prompt_template)
    note = ""
    if trained.recipe.stages:
        prompts = from_report(samples, prompt_template)
        note = "" if prompts else "no report.json yet: the eval prompts appear when the run " \
                                  "has been evaluated"
    else:
        try:
            prompts = from_data(trained)
        except (SlothlabError, OSError) as exc:
            prompts = from_report(samples, prompt_template)
            what = exc.render() if isinstance(exc, SlothlabError) else str(exc)
            note = (f"the run's data could not be read ({what.splitlines()[0][:160]}): "
                    "eval prompts from report.json, asked as single user turns")
    aligned = len(samples) == len(prompts) and all(
        int(s.get("row", -1)) == p.row for s, p in zip(samples, prompts, strict=True))
    if aligned:
        with_tuned = trained.checkpoint is None  # the report scored adapter/, not a checkpoint
        for sample, prompt in zip(samples, prompts, strict=True):
            prompt.answers = _eval_answers(sample, with_tuned)
    elif samples and prompts:
        note = note or "report.json does not match the eval set (re-run `slothlab eval`): " \
                       "the eval's answers are not shown"
    return prompts, note
