"""Greedy evaluation primitives: the eval set, batched greedy decoding, loss, scores, the cache.

The eval set is the first ``eval_samples`` examples of the seeded test split: the history up
to the last assistant turn is the prompt (rendered with the generation prompt, so it ends
exactly where the response begins), the last assistant turn is the reference. Decoding is
greedy (``do_sample=False``), batched with left padding over prompts sorted by length, and
stops at the template's end-of-turn token. The base model is the same weights with the
adapter disabled. Results are cached in ``<run>/eval/`` by model + eval set, so a second
``slothlab eval`` of an unchanged run recomputes nothing.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from recipes import metrics as M
from recipes.data.render import Renderer, adds_only_bos
from recipes.data.types import IGNORE_INDEX, Example, Tokenized
from recipes.schema import Recipe


@dataclass
class EvalItem:
    row: int
    prompt: str  # the rendered prompt, ending where the response begins
    question: str  # the last user turn (or instruction + input), for display
    reference: str
    task: str = ""
    lang: str = ""


@dataclass
class EvalResult:
    stage: str  # "base" | "finetuned"
    outputs: list[str]
    metrics: dict[str, float]
    per_example: list[dict[str, float]] = field(default_factory=list)


def build_eval_set(examples: list[Example], renderer: Renderer, limit: int) -> list[EvalItem]:
    items = []
    for ex in examples[:limit]:
        if renderer.prompt_template:
            fields = renderer.prompt_fields(ex)
            question = "\n\n".join(v for v in (fields["instruction"], fields.get("input")) if v)
            items.append(EvalItem(ex.row, renderer.render_prompt(fields), question,
                                  fields["response"], ex.meta.get("task", ""),
                                  ex.meta.get("lang", "")))
            continue
        last = max(i for i, m in enumerate(ex.messages) if m["role"] == "assistant")
        history = ex.messages[:last]
        question = next((m["content"] for m in reversed(history) if m["role"] == "user"), "")
        items.append(EvalItem(ex.row, renderer.render_chat(history, generation_prompt=True),
                              question, ex.messages[last]["content"], ex.meta.get("task", ""),
                              ex.meta.get("lang", "")))
    return items


def stop_token_ids(tokenizer: Any, renderer: Renderer) -> list[int]:
    """EOS plus the template's end-of-turn marker when it is a single token (<|eot_id|> ...)."""
    ids = {tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set()
    marker = getattr(renderer, "end_of_turn", "") or ""
    if marker:
        marker_ids = tokenizer(marker, add_special_tokens=False)["input_ids"]
        if len(marker_ids) == 1:
            ids.add(marker_ids[0])
    return sorted(ids)


def encode_prompts(tokenizer: Any, prompts: list[str]) -> list[list[int]]:
    """Token ids exactly as training encoded the same text (BOS handled the same way)."""
    bos = tokenizer.bos_token or ""
    special = adds_only_bos(tokenizer) and not any(p.startswith(bos) for p in prompts)
    return tokenizer(prompts, add_special_tokens=special)["input_ids"]


def pad(seqs: list[list[int]], pad_id: int, *, left: bool = False) -> tuple[Any, Any]:
    """(ids, attention mask) tensors for ``seqs``, padded on the right (or left)."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for row, seq in enumerate(seqs):
        cols = slice(width - len(seq), width) if left else slice(0, len(seq))
        ids[row, cols] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, cols] = 1
    return ids, mask


def generate(model: Any, tokenizer: Any, prompts: list[str], *, max_new_tokens: int,
             stop_ids: list[int], batch_size: int = 16) -> list[str]:
    """Greedy answers, batched: prompts sorted by length, left-padded, restored to order."""
    import torch

    if not prompts:
        return []
    encoded = encode_prompts(tokenizer, prompts)
    order = sorted(range(len(prompts)), key=lambda i: len(encoded[i]))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else stop_ids[0]
    device = next(model.parameters()).device
    answers: list[str] = [""] * len(prompts)
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, len(order), batch_size):
            idx = order[lo:lo + batch_size]
            ids, mask = pad([encoded[i] for i in idx], pad_id, left=True)
            width = ids.shape[1]
            with torch.no_grad():
                out = model.generate(
                    input_ids=ids.to(device), attention_mask=mask.to(device),
                    max_new_tokens=max_new_tokens, do_sample=False, num_beams=1,
                    temperature=None, top_p=None, top_k=None,
                    eos_token_id=stop_ids, pad_token_id=pad_id)
            for row, i in enumerate(idx):
                new = out[row, width:].tolist()
                cut = next((k for k, t in enumerate(new) if t in stop_ids), len(new))
                answers[i] = tokenizer.decode(new[:cut], skip_special_tokens=True).strip()
    finally:
        if was_training:
            model.train()
    return answers


def mean_loss(model: Any, items: list[Tokenized], batch_size: int = 8) -> float | None:
    """Token-weighted mean cross-entropy over the trained (response) tokens of ``items``."""
    import torch

    if not items:
        return None
    device = next(model.parameters()).device
    total, count = 0.0, 0
    was_training = model.training
    model.eval()
    try:
        for lo in range(0, len(items), batch_size):
            batch = items[lo:lo + batch_size]
            ids, mask = pad([t.input_ids for t in batch], 0)
            labels, _ = pad([t.labels for t in batch], IGNORE_INDEX)
            n = int((labels[:, 1:] != IGNORE_INDEX).sum())
            if n == 0:
                continue
            with torch.no_grad():
                out = model(input_ids=ids.to(device), attention_mask=mask.to(device),
                            labels=labels.to(device))
            total += float(out.loss) * n
            count += n
    finally:
        if was_training:
            model.train()
    return total / count if count else None


def score(stage: str, outputs: list[str], items: list[EvalItem], wanted: list[str],
          loss: float | None, *, classification_tasks: tuple[str, ...] = (),
          params: int = 0) -> EvalResult:
    """Corpus metrics; with tasks, classification metrics over classification items, answer
    metrics over the rest, a per-task/language breakdown, and the Zindi score if asked."""
    refs = [it.reference for it in items]
    is_cls = [it.task in classification_tasks for it in items]
    values: dict[str, float] = {}
    cls_pairs = [(o, r) for o, r, c in zip(outputs, refs, is_cls, strict=True)
                 if c or not classification_tasks]
    gen_pairs = [(o, r) for o, r, c in zip(outputs, refs, is_cls, strict=True) if not c]
    if cls_pairs and any(m in M.CLASSIFICATION_METRICS for m in wanted):
        values.update(M.classification(*map(list, zip(*cls_pairs, strict=True))))
    if gen_pairs and any(m in M.GENERATION_METRICS for m in wanted):
        values.update(M.score_corpus(*map(list, zip(*gen_pairs, strict=True))))
    values = {k: v for k, v in values.items() if k in wanted}
    if any(it.task for it in items):
        values.update(M.by_task(outputs, items, classification_tasks))
        if "zindi" in wanted:
            values.update(M.zindi(values, params))
    if loss is not None:
        values["eval_loss"] = loss
        values["perplexity"] = math.exp(min(loss, 50.0))
    per = [M.per_example(o, r) for o, r in zip(outputs, refs, strict=True)]
    return EvalResult(stage, outputs, values, per)


def cache_key(identity: str, items: list[EvalItem], recipe: Recipe) -> str:
    payload = json.dumps([identity, recipe.max_new_tokens, recipe.metrics,
                          [(it.prompt, it.reference) for it in items]], ensure_ascii=False)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def model_identity(path: str | Path) -> str:
    """A cheap fingerprint of weights: file sizes and times for a local folder, else the id."""
    folder = Path(path)
    if folder.is_dir():
        files = sorted(p for p in folder.iterdir() if p.suffix in (".safetensors", ".bin", ".json"))
        return json.dumps([(p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in files])
    return str(path)


def adapter_identity(adapter_dir: Path) -> str:
    weights = adapter_dir / "adapter_model.safetensors"
    return hashlib.sha256(weights.read_bytes()).hexdigest() if weights.exists() else str(adapter_dir)


def cached_eval(run_dir: Path, stage: str, key: str, compute: Any) -> tuple[EvalResult, bool]:
    """(result, was_cached): read ``<run>/eval/<stage>-<key>.json`` or compute and write it."""
    folder = run_dir / "eval"
    path = folder / f"{stage}-{key}.json"
    if path.exists():
        try:
            return EvalResult(**json.loads(path.read_text(encoding="utf-8"))), True
        except (ValueError, TypeError):
            pass  # a write cut short (killed run): recompute
    result = compute()
    folder.mkdir(exist_ok=True)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(asdict(result), ensure_ascii=False), encoding="utf-8")
    partial.replace(path)  # atomic: a reader sees the old file or the whole new one
    return result, False


def label_sets(examples: list[Example], tasks: list[str]) -> dict[tuple[str, str], list[str]]:
    """The label strings of each classification task and language, from all the data."""
    found: dict[tuple[str, str], set[str]] = {}
    for ex in examples:
        task = ex.meta.get("task", "")
        if task in tasks:
            found.setdefault((task, ex.meta.get("lang", "")), set()).add(
                ex.messages[-1]["content"])
    return {key: sorted(labels) for key, labels in found.items()}


def pick_labels(model: Any, tokenizer: Any, prompts: list[str], candidates: list[list[str]],
                end: str) -> list[str]:
    """For each prompt, the candidate whose tokens (and the end-of-turn) are most likely."""
    import torch

    device = next(model.parameters()).device
    chosen = []
    was_training = model.training
    model.eval()
    try:
        for prompt, labels in zip(prompts, candidates, strict=True):
            [prompt_ids] = encode_prompts(tokenizer, [prompt])
            full = encode_prompts(tokenizer, [prompt + label + end for label in labels])
            ids, mask = pad(full, 0)
            with torch.no_grad():
                logits = model(input_ids=ids.to(device), attention_mask=mask.to(device)).logits
            logprobs = torch.log_softmax(logits.float(), dim=-1).cpu()
            scores = []
            for row, seq in enumerate(full):
                start = len(prompt_ids) if seq[:len(prompt_ids)] == prompt_ids else 1
                positions = range(start, len(seq))
                scores.append(sum(float(logprobs[row, p - 1, seq[p]]) for p in positions))
            chosen.append(labels[max(range(len(labels)), key=scores.__getitem__)])
    finally:
        if was_training:
            model.train()
    return chosen


def count_parameters(model: Any) -> int:
    """Base-model parameters (4-bit weights counted unpacked; LoRA weights left out)."""
    total = 0
    for name, p in model.named_parameters():
        if "lora_" in name:
            continue
        total += p.numel() * (2 if type(p).__name__ == "Params4bit" else 1)
    return total


def run_stage(stage: str, model: Any, tokenizer: Any, renderer: Renderer, items: list[EvalItem],
              val: list[Tokenized], recipe: Recipe, *, batch_size: int = 16,
              labels: dict[tuple[str, str], list[str]] | None = None) -> EvalResult:
    """Answers for every item (generated, or the likeliest label for classification tasks)."""
    tasks = tuple(recipe.classification_tasks)
    outputs = [""] * len(items)
    gen = [i for i, it in enumerate(items) if it.task not in tasks]
    cls = [i for i, it in enumerate(items) if it.task in tasks]
    answers = generate(model, tokenizer, [items[i].prompt for i in gen],
                       max_new_tokens=recipe.max_new_tokens,
                       stop_ids=stop_token_ids(tokenizer, renderer), batch_size=batch_size)
    for i, answer in zip(gen, answers, strict=True):
        outputs[i] = answer
    if cls:
        end = renderer.end_of_turn if not renderer.prompt_template else (tokenizer.eos_token or "")
        picked = pick_labels(model, tokenizer, [items[i].prompt for i in cls],
                             [(labels or {}).get((items[i].task, items[i].lang), [""]) for i in cls],
                             end)
        for i, answer in zip(cls, picked, strict=True):
            outputs[i] = answer
    return score(stage, outputs, items, recipe.metrics, mean_loss(model, val),
                 classification_tasks=tasks, params=count_parameters(model) if cls else 0)

