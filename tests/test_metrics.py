"""Metric functions against hand-worked examples and the libraries' own behaviour."""

from __future__ import annotations

import pytest
import sacrebleu
from rouge_score import rouge_scorer

from recipes import metrics as M

ENGLISH = [
    ("The capital of France is Paris.", "Paris is the capital of France."),
    ("Glaucoma damages the optic nerves, running silently.", "Glaucoma can damage the optic nerve."),
    ("I don't know!", "I do not know."),
    ("", "Something."),
    ("3 plus 4 is 7.", "3 plus 4 is 7."),
]


def test_hand_worked_rouge_and_f1() -> None:
    # pred unigrams {the, cat, sat} all in ref (6 words): P = 1, R = 0.5, F = 2/3.
    scores = M.rouge("the cat sat", "the cat sat on the mat")
    assert scores["rouge1"] == pytest.approx(2 / 3)
    # pred bigrams (the cat), (cat sat) both in ref's 5 bigrams: P = 1, R = 0.4, F = 4/7.
    assert scores["rouge2"] == pytest.approx(4 / 7)
    assert scores["rougeL"] == pytest.approx(2 / 3)
    assert M.token_f1("the cat sat", "the cat sat on the mat") == pytest.approx(2 / 3)


@pytest.mark.parametrize(("prediction", "reference"), ENGLISH)
def test_english_rouge_equals_rouge_score_with_stemming(prediction: str, reference: str) -> None:
    reference_scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    expected = reference_scorer.score(reference, prediction)
    ours = M.rouge(prediction, reference)
    for name in ("rouge1", "rouge2", "rougeL"):
        assert ours[name] == pytest.approx(expected[name].fmeasure), name


@pytest.mark.parametrize(("text", "script"), [
    ("مرحبا كيف حالك اليوم", "Arabic"),
    ("ሰላም እንዴት ነህ ዛሬ", "Ge'ez"),
    ("आज आप कैसे हैं", "Devanagari"),
    ("আজি আপুনি কেনে আছে", "Bengali-Assamese"),
])
def test_non_latin_text_scores(text: str, script: str) -> None:
    default = rouge_scorer.RougeScorer(["rouge1"]).score(text, text)["rouge1"].fmeasure
    assert default == 0.0, f"rouge_score's default tokenizer drops {script}"
    assert M.rouge(text, text)["rouge1"] == 1.0
    half = " ".join(text.split()[:2])
    assert 0.0 < M.rouge(half, text)["rouge1"] < 1.0
    assert M.token_f1(half, text) > 0.0


def test_exact_match_ignores_case_and_punctuation() -> None:
    assert M.exact_match("Paris.", "paris") == 1.0
    assert M.exact_match("Paris", "Rome") == 0.0


def test_empty_prediction() -> None:
    assert M.rouge("", "a reference") == {"rouge1": 0.0, "rouge2": 0.0, "rougeL": 0.0}
    assert M.token_f1("", "a reference") == 0.0
    assert M.token_f1("", "") == 1.0
    scores = M.score_corpus(["", ""], ["one answer", "another one"])
    assert scores["bleu"] == 0.0 and scores["rouge1"] == 0.0


def test_corpus_bleu_and_chrf_are_sacrebleus() -> None:
    preds = [p for p, _ in ENGLISH]
    refs = [r for _, r in ENGLISH]
    scores = M.score_corpus(preds, refs)
    assert scores["bleu"] == pytest.approx(sacrebleu.corpus_bleu(preds, [refs]).score)
    assert scores["chrf"] == pytest.approx(sacrebleu.corpus_chrf(preds, [refs]).score)


def test_weighted_f1_hand_worked() -> None:
    # a: P .5 R 1 F 2/3 (support 1); b: P 1 R .5 F 2/3 (support 2); c: F 1 (support 1).
    scores = M.classification(["a", "a", "b", "c"], ["a", "b", "b", "c"])
    assert scores["accuracy"] == pytest.approx(0.75)
    assert scores["weighted_f1"] == pytest.approx((2 / 3 * 1 + 2 / 3 * 2 + 1 * 1) / 4)


def test_length_stats_and_change() -> None:
    assert M.length_stats(["a b c", "a", "a b"]) == {"mean_words": 2.0, "median_words": 2.0}
    assert M.change(0.4732, 0.5323)["relative"] == pytest.approx(0.1249, abs=1e-4)
    assert M.change(0.0, 0.5)["relative"] is None


def test_zindi_score_hand_worked() -> None:
    values = {"f1/sentiment/hau": 0.4, "f1/sentiment/swa": 0.6, "f1/xnli/hau": 0.3,
              "f1/xnli/swa": 0.5, "chrf/mt": 20.0}
    avg = (0.4 + 0.6 + 0.3 + 0.5 + 0.2) / 5
    scores = M.zindi(values, params=210_969_600)  # half the reference size
    assert scores["zindi_avg"] == pytest.approx(avg)
    assert scores["zindi"] == pytest.approx((avg + 0.5 * avg) / 2)
    assert M.zindi(values, params=M.ZINDI_REFERENCE_PARAMS)["zindi"] == pytest.approx(avg / 2)


def test_by_task_breakdown() -> None:
    from types import SimpleNamespace as Item

    items = [Item(task="sentiment", lang="swa", reference="Chanya"),
             Item(task="sentiment", lang="swa", reference="Hasi"),
             Item(task="mt", lang="swa", reference="Asante sana."),
             Item(task="mt", lang="hau", reference="Na gode sosai.")]
    outputs = ["Chanya", "Chanya", "Asante sana.", "Na gode."]
    scores = M.by_task(outputs, items, ("sentiment",))
    assert scores["accuracy/sentiment/swa"] == 0.5
    assert scores["chrf/mt/swa"] == pytest.approx(100.0)
    assert 0 < scores["chrf/mt/hau"] < 100 and 0 < scores["chrf/mt"] < 100
