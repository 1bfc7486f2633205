"""Ranking, classification and latency metrics (pure Python + numpy; ``fitb_accuracy`` and
``roc_auc`` are :mod:`engine.train.classification`'s, ROC AUC by scikit-learn).

Conventions used by every ranking metric here:

* ``ranked`` is a result list, best first. ``k`` cuts it to its first ``k`` entries; a list
  shorter than ``k`` is simply used whole (``k`` larger than the list is not an error).
* Repeated ids in ``ranked`` count once: only the first occurrence can earn credit.
* A query without any relevant item scores ``0.0`` (the metric is undefined there; callers
  should leave such queries out of their averages, and the query generators never make them).
* nDCG uses exponential gain ``2**rel - 1`` and discount ``log2(rank + 1)`` (Burges et al.),
  the usual choice for graded judgments 0..3; ``gain="linear"`` uses ``rel`` instead.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Hashable, Iterable, Mapping, Sequence, Sized
from typing import Any, Literal, TypeVar, cast, overload

import numpy as np

from engine.train.classification import fitb_accuracy, roc_auc

H = TypeVar("H", bound=Hashable)
GainKind = Literal["exp", "linear"]


# --------------------------------------------------------------------------- helpers


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be >= 1, got {k}")


def _dedup(ranked: Iterable[H], k: int | None = None) -> list[H | None]:
    """First ``k`` entries of ``ranked``; repeated ids are replaced by ``None`` (no credit)."""
    seen: set[H] = set()
    out: list[H | None] = []
    for item in ranked:
        if k is not None and len(out) >= k:
            break
        if item in seen:
            out.append(None)
        else:
            seen.add(item)
            out.append(item)
    return out


def _gain(rel: float, kind: GainKind) -> float:
    if rel < 0:
        raise ValueError(f"relevance gains must be >= 0, got {rel}")
    return (2.0**rel - 1.0) if kind == "exp" else float(rel)


def _dcg(gains: Sequence[float], k: int, kind: GainKind) -> float:
    return float(sum(_gain(g, kind) / math.log2(i + 2) for i, g in enumerate(gains[:k])))


def mean(values: Iterable[float]) -> float:
    """Arithmetic mean; ``ValueError`` on an empty input (never a silent 0 or NaN)."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("mean of an empty sequence")
    return float(sum(vals) / len(vals))


# --------------------------------------------------------------------------- nDCG


def ndcg_at_k_from_gains(
    gains: Sequence[float],
    k: int = 10,
    ideal_gains: Iterable[float] | None = None,
    gain: GainKind = "exp",
) -> float:
    """nDCG@k of a result list given as the relevance gain of each position.

    ``ideal_gains`` are the gains of *all* relevant items of the query (the ideal ranking is
    them sorted descending); default: the gains in ``gains`` themselves, which is only right
    when the list holds every relevant item.
    """
    _check_k(k)
    ideal = sorted(gains if ideal_gains is None else ideal_gains, reverse=True)
    idcg = _dcg(ideal, k, gain)
    if idcg <= 0.0:
        return 0.0
    return _dcg(list(gains), k, gain) / idcg


@overload
def ndcg_at_k(
    ranked: Sequence[float],
    relevance: None = None,
    k: int = 10,
    *,
    gain: GainKind = "exp",
) -> float: ...


@overload
def ndcg_at_k(
    ranked: Sequence[H],
    relevance: Mapping[H, float],
    k: int = 10,
    *,
    gain: GainKind = "exp",
) -> float: ...


def ndcg_at_k(
    ranked: Sequence[object],
    relevance: Mapping[Any, float] | None = None,
    k: int = 10,
    *,
    gain: GainKind = "exp",
) -> float:
    """Graded nDCG@k.

    * ``ndcg_at_k(ids, {id: gain, ...}, k)``: ``ranked`` is a list of ids; ids missing from
      ``relevance`` have gain 0; the ideal ranking sorts all gains in ``relevance``.
    * ``ndcg_at_k([gain, gain, ...], k=k)``: the list is already the gain of each position
      (ideal = the same gains sorted), see :func:`ndcg_at_k_from_gains` to pass the ideal.
    """
    _check_k(k)
    if relevance is None:
        return ndcg_at_k_from_gains([float(cast(float, g)) for g in ranked], k, gain=gain)
    gains = [0.0 if item is None else float(relevance.get(item, 0.0)) for item in _dedup(ranked)]
    return ndcg_at_k_from_gains(gains, k, ideal_gains=relevance.values(), gain=gain)


# --------------------------------------------------------------------------- set-based


def hits_at_k(ranked: Sequence[H], relevant: Collection[H], k: int) -> int:
    """Number of distinct relevant ids among the first ``k`` results."""
    _check_k(k)
    rel = set(relevant)
    return sum(1 for item in _dedup(ranked, k) if item is not None and item in rel)


def recall_at_k(ranked: Sequence[H], relevant: Collection[H], k: int = 10) -> float:
    """Share of the relevant ids found in the first ``k`` results (0.0 with no relevant ids)."""
    rel = set(relevant)
    if not rel:
        _check_k(k)
        return 0.0
    return hits_at_k(ranked, rel, k) / len(rel)


def precision_at_k(ranked: Sequence[H], relevant: Collection[H], k: int = 10) -> float:
    """Relevant results in the first ``k`` divided by ``k`` (a short list is not padded out:
    missing positions count as misses)."""
    return hits_at_k(ranked, relevant, k) / k


def hit_rate_at_k(ranked: Sequence[H], relevant: Collection[H], k: int = 10) -> float:
    """1.0 when any relevant id is in the first ``k`` results, else 0.0."""
    return 1.0 if hits_at_k(ranked, relevant, k) > 0 else 0.0


def reciprocal_rank(ranked: Sequence[H], relevant: Collection[H], k: int | None = None) -> float:
    """1 / rank of the first relevant result (0.0 when none in the first ``k``)."""
    if k is not None:
        _check_k(k)
    rel = set(relevant)
    for i, item in enumerate(_dedup(ranked, k)):
        if item is not None and item in rel:
            return 1.0 / (i + 1)
    return 0.0


def mrr(
    rankings: Sequence[Sequence[H]],
    relevants: Sequence[Collection[H]],
    k: int | None = None,
) -> float:
    """Mean reciprocal rank over queries (``ValueError`` for zero queries)."""
    _same_length(rankings, relevants)
    return mean(reciprocal_rank(r, rel, k) for r, rel in zip(rankings, relevants, strict=True))


def average_precision(ranked: Sequence[H], relevant: Collection[H], k: int | None = None) -> float:
    """Average of precision@i over the ranks i of relevant hits, divided by ``|relevant|``
    (by ``min(k, |relevant|)`` when ``k`` is given); 0.0 with no relevant ids."""
    if k is not None:
        _check_k(k)
    rel = set(relevant)
    if not rel:
        return 0.0
    found = 0
    total = 0.0
    for i, item in enumerate(_dedup(ranked, k)):
        if item is not None and item in rel:
            found += 1
            total += found / (i + 1)
    denom = len(rel) if k is None else min(k, len(rel))
    return total / denom


def mean_average_precision(
    rankings: Sequence[Sequence[H]],
    relevants: Sequence[Collection[H]],
    k: int | None = None,
) -> float:
    """MAP over queries (``ValueError`` for zero queries)."""
    _same_length(rankings, relevants)
    return mean(average_precision(r, rel, k) for r, rel in zip(rankings, relevants, strict=True))


def recall_curve(
    rankings: Sequence[Sequence[H]],
    relevants: Sequence[Collection[H]],
    ks: Iterable[int] = (1, 5, 10, 20, 50, 100),
) -> dict[int, float]:
    """Mean recall@K for several K (queries without relevant ids are left out)."""
    _same_length(rankings, relevants)
    pairs = [(r, rel) for r, rel in zip(rankings, relevants, strict=True) if len(set(rel)) > 0]
    if not pairs:
        raise ValueError("no query has a relevant item")
    return {int(k): mean(recall_at_k(r, rel, k) for r, rel in pairs) for k in ks}


def approx_recall(approx: Sequence[H], exact: Sequence[H], k: int = 10) -> float:
    """Recall of an approximate top-``k`` (e.g. ANN, coarse binary search) against the exact
    top-``k``: ``|approx[:k] & exact[:k]| / min(k, len(exact))``; 1.0 when ``exact`` is empty."""
    _check_k(k)
    truth = {x for x in _dedup(exact, k) if x is not None}
    if not truth:
        return 1.0
    got = {x for x in _dedup(approx, k) if x is not None}
    return len(got & truth) / len(truth)


def _same_length(a: Sized, b: Sized) -> None:
    if len(a) != len(b):
        raise ValueError(f"length mismatch: {len(a)} != {len(b)}")


# --------------------------------------------------------------------------- composed queries


def geometric_mean(values: Iterable[float]) -> float:
    """Geometric mean of non-negative values (0.0 when any is 0); ``ValueError`` when empty."""
    vals = [float(v) for v in values]
    if not vals:
        raise ValueError("geometric mean of an empty sequence")
    if any(v < 0 for v in vals):
        raise ValueError("geometric mean needs non-negative values")
    if any(v == 0.0 for v in vals):
        return 0.0
    return float(math.exp(sum(math.log(v) for v in vals) / len(vals)))


def compose_ndcg(
    ranked: Sequence[H],
    visual_relevance: Mapping[H, float],
    text_relevance: Mapping[H, float],
    k: int = 10,
) -> dict[str, float]:
    """One "this but in <colour>" query: visual nDCG (same kind of item), text nDCG (has the
    asked-for attribute) and their geometric mean (high only when both are satisfied)."""
    v = ndcg_at_k(ranked, visual_relevance, k)
    t = ndcg_at_k(ranked, text_relevance, k)
    return {"visual": v, "text": t, "mm": geometric_mean([v, t])}


def compose_summary(visual: Sequence[float], text: Sequence[float]) -> dict[str, float]:
    """Aggregate per-query visual/text nDCG: the means, and ``mm`` = the geometric mean of the
    two means (the ``compose_mm_ndcg_at_10`` definition)."""
    _same_length(visual, text)
    v, t = mean(visual), mean(text)
    return {"visual": v, "text": t, "mm": geometric_mean([v, t])}


# --------------------------------------------------------------------------- classification


def accuracy(predicted: Sequence[Hashable], expected: Sequence[Hashable]) -> float:
    """Share of exact matches (top-1 accuracy of labels)."""
    _same_length(predicted, expected)
    if not predicted:
        raise ValueError("no predictions")
    return sum(1 for p, e in zip(predicted, expected, strict=True) if p == e) / len(predicted)


# --------------------------------------------------------------------------- latency


def percentile(samples: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100, linear interpolation between order statistics)."""
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 100.0:
        raise ValueError(f"q must be in [0, 100], got {q}")
    return float(np.percentile(np.asarray(samples, dtype=float), q))


def latency_summary(samples_ms: Sequence[float]) -> dict[str, float]:
    """``{"p50_ms", "p99_ms", "mean_ms", "max_ms", "n"}`` of latency samples in milliseconds."""
    if not samples_ms:
        raise ValueError("no latency samples")
    arr = np.asarray(samples_ms, dtype=float)
    if (arr < 0).any() or not np.isfinite(arr).all():
        raise ValueError("latency samples must be finite and >= 0")
    return {
        "p50_ms": percentile(samples_ms, 50.0),
        "p99_ms": percentile(samples_ms, 99.0),
        "mean_ms": float(arr.mean()),
        "max_ms": float(arr.max()),
        "n": int(arr.size),
    }


def timed_ms(fn: Callable[[], object], clock: Callable[[], float] | None = None) -> float:
    """Wall time of one call of ``fn`` in milliseconds (``time.perf_counter`` by default)."""
    tick = clock or time.perf_counter
    start = tick()
    fn()
    return (tick() - start) * 1000.0


__all__ = [
    "accuracy",
    "approx_recall",
    "average_precision",
    "compose_ndcg",
    "compose_summary",
    "fitb_accuracy",
    "geometric_mean",
    "hit_rate_at_k",
    "hits_at_k",
    "latency_summary",
    "mean",
    "mean_average_precision",
    "mrr",
    "ndcg_at_k",
    "ndcg_at_k_from_gains",
    "percentile",
    "precision_at_k",
    "recall_at_k",
    "recall_curve",
    "reciprocal_rank",
    "roc_auc",
    "timed_ms",
]
