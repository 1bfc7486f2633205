"""Classification scores of the outfit-compatibility benchmark (fill in the blank, ROC AUC).

Training (:mod:`engine.train.looks_benchmark`) and evaluation (:mod:`evaluation.metrics`, which
re-exports both) share these; ROC AUC is scikit-learn's.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def fitb_accuracy(scores: Sequence[Sequence[float]], answers: Sequence[int]) -> float:
    """Fill-in-the-blank accuracy: per question, the choice with the highest score is the
    prediction. A tie between the top choices gets fractional credit ``1/n_tied`` when the
    answer is among them (the expectation under random tie-breaking)."""
    if len(scores) != len(answers):
        raise ValueError(f"length mismatch: {len(scores)} != {len(answers)}")
    if not scores:
        raise ValueError("no questions")
    total = 0.0
    for row, ans in zip(scores, answers, strict=True):
        arr = np.asarray(row, dtype=float)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("each question needs a non-empty list of choice scores")
        if not 0 <= ans < arr.size:
            raise ValueError(f"answer index {ans} out of range for {arr.size} choices")
        if np.isnan(arr).any():
            raise ValueError("NaN choice score")
        top = np.flatnonzero(arr == arr.max())
        if ans in top:
            total += 1.0 / top.size
    return total / len(scores)


def roc_auc(labels: Sequence[int | bool], scores: Sequence[float]) -> float:
    """Area under the ROC curve = P(score(pos) > score(neg)) + 0.5 * P(tie)
    (:func:`sklearn.metrics.roc_auc_score`). ``ValueError`` unless both classes are present."""
    from sklearn.metrics import roc_auc_score

    if len(labels) != len(scores):
        raise ValueError(f"length mismatch: {len(labels)} != {len(scores)}")
    y = np.asarray([bool(v) for v in labels], dtype=bool)
    s = np.asarray(scores, dtype=float)
    if np.isnan(s).any():
        raise ValueError("NaN score")
    if y.all() or not y.any():
        raise ValueError("roc_auc needs at least one positive and one negative")
    return float(roc_auc_score(y, s))
