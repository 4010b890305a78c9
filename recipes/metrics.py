"""Metrics for generated answers: ROUGE, BLEU, chrF, token F1, exact match, lengths, accuracy.

    from recipes.metrics import score_corpus
    scores = score_corpus(predictions, references)   # {"rouge1": ..., "bleu": ..., ...}

ROUGE is rouge_score's, with one change of tokenizer: rouge_score's default keeps only
[a-z0-9], so Arabic, Ge'ez, Devanagari or Bengali-Assamese text scores 0 whatever the answer.
``UnicodeTokenizer`` splits on Unicode word characters instead, and stems ASCII words with the
same Porter stemmer rouge_score uses; on English text it yields exactly rouge_score's tokens
(a test holds it to that). BLEU and chrF are sacrebleu's corpus scores (0-100).
"""

from __future__ import annotations

import re
import statistics
import unicodedata
from collections import Counter
from typing import Any

from rouge_score import rouge_scorer, tokenizers

WORD_RE = re.compile(r"[^\W_]+", re.UNICODE)
ASCII_WORD_RE = re.compile(r"^[a-z0-9]+$")
ROUGE_TYPES = ("rouge1", "rouge2", "rougeL")
GENERATION_METRICS = ("rouge1", "rouge2", "rougeL", "bleu", "chrf", "token_f1", "exact_match")
CLASSIFICATION_METRICS = ("accuracy", "weighted_f1")


class UnicodeTokenizer(tokenizers.Tokenizer):
    """rouge_score's tokenization, extended from [a-z0-9] to every script."""

    def __init__(self, stem: bool = True) -> None:
        from nltk.stem import porter

        self._stemmer = porter.PorterStemmer() if stem else None

    def tokenize(self, text: str) -> list[str]:
        words = WORD_RE.findall(unicodedata.normalize("NFKC", text).lower())
        if self._stemmer is None:
            return words
        # Same rule as rouge_score: stem ASCII words longer than 3 characters.
        return [self._stemmer.stem(w) if len(w) > 3 and ASCII_WORD_RE.match(w) else w
                for w in words]


_SCORER: rouge_scorer.RougeScorer | None = None
_WORDS = UnicodeTokenizer(stem=False)


def rouge(prediction: str, reference: str) -> dict[str, float]:
    """ROUGE-1/2/L F-measures of one answer."""
    global _SCORER
    if _SCORER is None:
        _SCORER = rouge_scorer.RougeScorer(list(ROUGE_TYPES), tokenizer=UnicodeTokenizer())
    scores = _SCORER.score(reference, prediction)
    return {name: scores[name].fmeasure for name in ROUGE_TYPES}


def normalise_answer(text: str) -> str:
    return " ".join(_WORDS.tokenize(text))


def token_f1(prediction: str, reference: str) -> float:
    """SQuAD-style F1 of word overlap (Unicode words, lower-cased)."""
    pred, ref = _WORDS.tokenize(prediction), _WORDS.tokenize(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, reference: str) -> float:
    return float(normalise_answer(prediction) == normalise_answer(reference))


def word_count(text: str) -> int:
    return len(text.split())


def per_example(prediction: str, reference: str) -> dict[str, float]:
    return {**rouge(prediction, reference), "token_f1": token_f1(prediction, reference),
            "exact_match": exact_match(prediction, reference)}


def score_corpus(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Mean per-example scores plus corpus BLEU and chrF (sacrebleu, 0-100)."""
    import sacrebleu

    if len(predictions) != len(references):
        raise ValueError("predictions and references differ in length")
    if not predictions:
        return {}
    rows = [per_example(p, r) for p, r in zip(predictions, references, strict=True)]
    out = {name: statistics.fmean(row[name] for row in rows) for name in rows[0]}
    out["bleu"] = sacrebleu.corpus_bleu(predictions, [references]).score
    out["chrf"] = sacrebleu.corpus_chrf(predictions, [references]).score
    return out


def length_stats(texts: list[str]) -> dict[str, float]:
    counts = [word_count(t) for t in texts] or [0]
    return {"mean_words": statistics.fmean(counts), "median_words": float(statistics.median(counts))}


def classification(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Accuracy and support-weighted F1 over normalised labels."""
    preds = [normalise_answer(p) for p in predictions]
    refs = [normalise_answer(r) for r in references]
    if not refs:
        return {}
    accuracy = sum(p == r for p, r in zip(preds, refs, strict=True)) / len(refs)
    support = Counter(refs)
    weighted = 0.0
    for label, n in support.items():
        tp = sum(p == r == label for p, r in zip(preds, refs, strict=True))
        predicted = sum(p == label for p in preds)
        precision = tp / predicted if predicted else 0.0
        recall = tp / n
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        weighted += f1 * n / len(refs)
    return {"accuracy": accuracy, "weighted_f1": weighted}


def change(base: float | None, finetuned: float | None) -> dict[str, Any]:
    """Absolute and relative change, as the write-ups tabulate it."""
    if base is None or finetuned is None:
        return {"change": None, "relative": None}
    relative = (finetuned - base) / abs(base) if base else None
    return {"change": finetuned - base, "relative": relative}


ZINDI_REFERENCE_PARAMS = 421_939_200  # InkubaLM-0.4B: the challenge's size yardstick
ZINDI_PARTS = ("f1/sentiment/hau", "f1/sentiment/swa", "f1/xnli/hau", "f1/xnli/swa", "chrf/mt")


def by_task(outputs: list[str], items: list[Any], classification_tasks: tuple[str, ...]
            ) -> dict[str, float]:
    """Per task and language: weighted F1 and accuracy for classification, chrF (0-100) for
    generation; plus corpus chrF per generation task over all its languages."""
    import sacrebleu

    groups: dict[tuple[str, str], list[int]] = {}
    for i, it in enumerate(items):
        groups.setdefault((it.task, it.lang), []).append(i)
    out: dict[str, float] = {}
    for (task, lang), idx in sorted(groups.items()):
        preds = [outputs[i] for i in idx]
        refs = [items[i].reference for i in idx]
        if task in classification_tasks:
            scores = classification(preds, refs)
            out[f"f1/{task}/{lang}"] = scores["weighted_f1"]
            out[f"accuracy/{task}/{lang}"] = scores["accuracy"]
        else:
            out[f"chrf/{task}/{lang}"] = sacrebleu.corpus_chrf(preds, [refs]).score
    for task in sorted({t for t, _ in groups if t not in classification_tasks}):
        idx = [i for (t, _), ids in groups.items() if t == task for i in ids]
        out[f"chrf/{task}"] = sacrebleu.corpus_chrf([outputs[i] for i in idx],
                                                    [[items[i].reference for i in idx]]).score
    return out


def zindi(values: dict[str, float], params: int) -> dict[str, float]:
    """The Buzuzu-Mavi score: the mean of the four weighted F1s and MT chrF/100, then
    ``(avg + (1 - params / 421,939,200) * avg) / 2`` rewarding smaller models."""
    parts = [values[k] / (100.0 if k.startswith("chrf") else 1.0) for k in ZINDI_PARTS
             if k in values]
    if not parts:
        return {}
    avg = statistics.fmean(parts)
    return {"zindi_avg": avg,
            "zindi": (avg + (1 - params / ZINDI_REFERENCE_PARAMS) * avg) / 2}
