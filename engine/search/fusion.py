"""Client-side score fusion that reproduces the neural-search normalisation processor.

Used to explain hybrid scores (per-stage breakdown) and as the fallback when the cluster has no
hybrid search pipeline. Semantics of OpenSearch 2.19's ``min_max`` + ``arithmetic_mean``:

* each sub-query's scores are min-max normalised over that sub-query's own result list;
  when all its scores are equal they become 1.0, and an exact 0 becomes 0.001;
* a document missing from a sub-query's list contributes 0 for it (its weight still counts);
* the combined score is ``sum(w_i * s_i) / sum(w_i)``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

MIN_SCORE = 0.001


def min_max(scores: Mapping[str, float]) -> dict[str, float]:
    """Min-max normalise one sub-query's scores (neural-search semantics)."""
    if not scores:
        return {}
    lo, hi = min(scores.values()), max(scores.values())
    out: dict[str, float] = {}
    for doc_id, s in scores.items():
        if hi == lo:
            out[doc_id] = 1.0
        else:
            v = (s - lo) / (hi - lo)
            out[doc_id] = v if v != 0.0 else MIN_SCORE
    return out


@dataclass(frozen=True)
class FusedScore:
    """One document's per-sub-query raw and normalised scores and the combined score."""

    doc_id: str
    raw: tuple[float | None, ...]
    normalized: tuple[float, ...]
    score: float


def fuse(results: Sequence[Mapping[str, float]], weights: Sequence[float]) -> list[FusedScore]:
    """Combine sub-query result lists (doc id -> raw score), best first (ties by doc id)."""
    if len(results) != len(weights):
        raise ValueError("one weight per sub-query result list")
    if any(w < 0 for w in weights) or sum(weights) <= 0:
        raise ValueError("weights must be non-negative with a positive sum")
    norms = [min_max(r) for r in results]
    total = float(sum(weights))
    ids: dict[str, None] = {}
    for r in results:
        ids.update(dict.fromkeys(r))
    fused: list[FusedScore] = []
    for doc_id in ids:
        raw = tuple(r.get(doc_id) for r in results)
        normalized = tuple(n.get(doc_id, 0.0) for n in norms)
        score = sum(w * s for w, s in zip(weights, normalized, strict=True)) / total
        fused.append(FusedScore(doc_id, raw, normalized, score))
    fused.sort(key=lambda f: (-f.score, f.doc_id))
    return fused
