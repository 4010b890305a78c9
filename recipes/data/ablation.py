"""The label-misalignment ablation, for teaching: shows what the fix is worth.

Seed 001's write-up gained ROUGE-2 +64 % and BLEU +223 % from one fix: its labels had been
shifted by hand although the model already shifts them inside its loss, so every position was
trained to predict the token after next. ``misalign_labels`` reproduces that bug on the
training split only (validation and the before/after evaluation stay aligned, so every variant
of an experiment is measured the same way). The runner refuses it outside an experiment.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from recipes.data.types import IGNORE_INDEX, Tokenized

NOTE = ("misalign_labels: training labels shifted one extra position (teaching ablation: the "
        "model learns the token after next); validation and evaluation stay aligned")


def shift_labels_once_more(items: list[Tokenized]) -> list[Tokenized]:
    """Each item's labels moved one position left (position t gets the label of t+1), as a
    hand-made ``labels = input_ids[1:]`` does before a model that shifts them again."""
    out = []
    for item in items:
        labels = np.full_like(item.labels, IGNORE_INDEX)
        labels[:-1] = item.labels[1:]
        out.append(dataclasses.replace(item, labels=labels))
    return out
