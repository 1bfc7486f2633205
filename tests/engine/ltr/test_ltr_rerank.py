"""rerank(): blend, top N, stable ties, validation (issue 8)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.errors import InvalidInput
from engine.ltr.features import Candidate
from engine.ltr.model import LtrModel, Tree
from engine.ltr.rerank import RerankBlend, blend_scores, minmax, rerank


def rating_model() -> LtrModel:
    """One stump: rating <= 0.5 -> logit -2, else +2 (rated items are preferred)."""
    tree = Tree(
        left=np.array([1, -1, -1]),
        right=np.array([2, -1, -1]),
        feature=np.array([0, -2, -2]),
        threshold=np.array([0.5, -2.0, -2.0]),
        leaf_weight=np.array([0.0, -2.0, 2.0]),
    )
    return LtrModel(("rating",), {"rating": 0.0}, [tree], 0.0, "stump")


def cands(ratings: list[float | None]) -> list[Candidate]:
    n = len(ratings)
    return [
        Candidate(f"d{i}", float(n - i), {} if r is None else {"rating": r})
        for i, r in enumerate(ratings)
    ]


def ids(ranked: list) -> list[str]:
    return [r.doc_id for r in ranked]


def test_zero_weight_or_disabled_keeps_order_without_a_model() -> None:
    c = cands([0, 1, 0, 1])
    for blend in (RerankBlend(ltr_weight=0.0), RerankBlend(ltr_weight=0.9, enabled=False)):
        out = rerank(c, model=None, blend=blend)  # would load the default model if used
        assert ids(out) == ["d0", "d1", "d2", "d3"]
        assert all(r.ltr_score is None for r in out)
    assert rerank([], rating_model()) == []


def test_full_weight_orders_by_model_with_stable_ties() -> None:
    out = rerank(cands([0, 1, 0, 1, None]), rating_model(), blend=RerankBlend(ltr_weight=1.0))
    assert ids(out) == ["d1", "d3", "d0", "d2", "d4"]
    assert [r.original_rank for r in out] == [1, 3, 0, 2, 4]
    first, last = out[0].ltr_score, out[-2].ltr_score
    assert first is not None and last is not None and first > last


def test_blend_keeps_the_look() -> None:
    # relevance 5..1 (min-max 1, .75, .5, .25, 0); the model likes d4 only
    c = cands([0, 0, 0, 0, 1])
    light = rerank(c, rating_model(), blend=RerankBlend(ltr_weight=0.15))
    assert ids(light) == ["d0", "d1", "d2", "d3", "d4"]  # 0.15 < 0.85 * one relevance step
    strong = rerank(c, rating_model(), blend=RerankBlend(ltr_weight=0.6))
    assert ids(strong)[0] == "d4"


def test_only_top_n_is_reranked() -> None:
    c = cands([0, 0, 1, 0, 1, 1])
    out = rerank(c, rating_model(), blend=RerankBlend(ltr_weight=1.0, top_n=3))
    assert ids(out) == ["d2", "d0", "d1", "d3", "d4", "d5"]
    assert [r.score is None for r in out] == [False] * 3 + [True] * 3


def test_minmax_and_blend() -> None:
    np.testing.assert_allclose(minmax(np.array([2.0, np.nan, 4.0])), [0.0, 0.0, 1.0])
    np.testing.assert_allclose(minmax(np.array([3.0, 3.0])), [0.0, 0.0])
    np.testing.assert_allclose(
        blend_scores(np.array([1.0, 0.0]), np.array([0.0, 1.0]), 0.25), [0.75, 0.25]
    )


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ltr_weight": float("nan")},
        {"ltr_weight": 1.5},
        {"ltr_weight": -0.1},
        {"ltr_weight": True},
        {"top_n": 0},
        {"top_n": 10_000},
    ],
)
def test_invalid_blend(kwargs: dict) -> None:
    with pytest.raises(InvalidInput):
        RerankBlend(**kwargs)


def test_candidate_from_hit_and_default_model() -> None:
    hit = {"_id": "15970", "_score": 3.5, "_source": {"price": 999.0, "rating": 1}}
    c = Candidate.from_hit(hit, {"text_sim": 0.8})
    assert (c.doc_id, c.score, c.doc["price"], c.signals["text_sim"]) == ("15970", 3.5, 999.0, 0.8)
    out = rerank([c, Candidate("2", 1.0)], reference_time=1.7e9)  # shipped model
    assert sorted(ids(out)) == ["15970", "2"]
    assert all(r.ltr_score is not None and 0.0 <= r.ltr_score <= 1.0 for r in out)
