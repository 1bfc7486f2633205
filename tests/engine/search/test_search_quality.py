"""The quality (LTR) re-rank stage of the search service, against a recording backend.

The blend comes from a callable (the API passes ``TuningStore.blend``); the model is the shipped
LTR model, so the expected order is computed here with that model directly.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.ltr.features import Candidate
from engine.ltr.rerank import RerankBlend, blend_scores, load_model
from engine.search.quality import LTR_DOC_FIELDS, QualityRerank
from engine.search.service import SearchOptions, SearchService
from tests.search_fakes import FakeBackend, FakeModel, hit, response

# retrieval order a..h; business signals that disagree with it
DOCS = [
    ("a", 9.0, {"rating": 1.0, "sales": 0, "price": 4000, "discounted_price": 4000}),
    ("b", 8.5, {"rating": 4.8, "sales": 900, "price": 2000, "discounted_price": 1000}),
    ("c", 8.0, {"rating": 2.0, "sales": 3, "price": 3000, "discounted_price": 3000}),
    ("d", 7.5, {"rating": 4.5, "sales": 400, "price": 1500, "discounted_price": 900}),
    ("e", 7.0, {"rating": 0.0, "sales": 0, "price": 5000, "discounted_price": 5000}),
    ("f", 6.5, {"rating": 5.0, "sales": 2000, "price": 1200, "discounted_price": 600}),
    ("g", 6.0, {"rating": 3.0, "sales": 10, "price": 2500, "discounted_price": 2500}),
    ("h", 5.5, {"rating": 4.0, "sales": 50, "price": 1800, "discounted_price": 1500}),
]


def hits() -> list[dict[str, Any]]:
    return [hit(i, s, in_stock=True, **src) for i, s, src in DOCS]


def service(be: FakeBackend, quality: QualityRerank | None) -> SearchService:
    return SearchService(
        be,  # type: ignore[arg-type]
        index="idx",
        pipeline="pipe",
        model=FakeModel(),
        options=SearchOptions(),
        quality=quality,
    )


def ltr_order(top_n: int, weight: float = 1.0, bm25_signal: bool = True) -> list[str]:
    """Ids by ``(1 - w) minmax(retrieval) + w minmax(model)`` over the first ``top_n`` (ties
    keep the retrieval order), the rest after them."""
    head = [
        Candidate.from_hit(h, {"bm25": h["_score"]} if bm25_signal else {}) for h in hits()[:top_n]
    ]
    scores = blend_scores(
        np.array([c.score for c in head]), load_model().score_candidates(head, 0.0), weight
    )
    order = sorted(range(len(head)), key=lambda i: (-scores[i], i))
    return [head[i].doc_id for i in order] + [d for d, _, _ in DOCS[top_n:]]


def test_full_ltr_weight_orders_by_the_model_and_fetches_top_n() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*hits()[: body["size"]])
    blend = RerankBlend(ltr_weight=1.0, top_n=8)
    res = service(be, QualityRerank(lambda: blend)).text_search(
        "shirt", mode="bm25", size=5, explain=True
    )
    (body,) = be.searches()
    assert body["size"] == 8  # the stage needs its top_n candidates
    assert set(LTR_DOC_FIELDS) <= set(body["_source"]["includes"])
    expected = ltr_order(8)
    assert expected[:5] != [d for d, _, _ in DOCS[:5]]  # the model disagrees with retrieval here
    assert [h.id for h in res.hits] == expected[:5]
    assert res.strategy == "bm25+ltr"
    assert all(h.explain is not None and h.explain.ltr is not None for h in res.hits)


def test_disabled_or_zero_weight_keeps_the_retrieval_order_and_size() -> None:
    for blend in (RerankBlend(enabled=False), RerankBlend(ltr_weight=0.0)):
        be = FakeBackend()
        be.on_search = lambda body, kw: response(*hits()[: body["size"]])
        res = service(be, QualityRerank(lambda b=blend: b)).text_search(
            "shirt", mode="bm25", size=5
        )
        (body,) = be.searches()
        assert body["size"] == 5
        assert "rating" not in body["_source"]["includes"]
        assert [h.id for h in res.hits] == ["a", "b", "c", "d", "e"]
        assert res.strategy == "bm25"


def test_a_broken_model_keeps_search_working() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*hits()[: body["size"]])
    quality = QualityRerank(lambda: RerankBlend(top_n=8), model_path=Path("/no/such/model.json"))
    res = service(be, quality).text_search("shirt", mode="bm25", size=5)
    assert [h.id for h in res.hits] == ["a", "b", "c", "d", "e"]
    assert res.strategy == "bm25"


def test_partial_weight_and_top_n_come_from_the_live_blend() -> None:
    live = {"blend": RerankBlend(ltr_weight=0.3, top_n=6)}
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*hits()[: body["size"]])
    svc = service(be, QualityRerank(lambda: live["blend"]))
    got = [h.id for h in svc.text_search("shirt", mode="bm25", size=8).hits]
    assert got == ltr_order(6, 0.3)[:8]
    live["blend"] = RerankBlend(ltr_weight=0.9, top_n=8)  # a merchandiser's change: next query
    got = [h.id for h in svc.text_search("shirt", mode="bm25", size=8).hits]
    assert got == ltr_order(8, 0.9)
    assert ltr_order(6, 0.3) != ltr_order(8, 0.9)


def test_photo_search_ends_with_the_quality_stage() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*hits()[: body["size"]])
    svc = service(be, QualityRerank(lambda: RerankBlend(ltr_weight=1.0, top_n=8)))
    res = svc.image_search(Image.new("RGB", (32, 32), (200, 10, 10)), size=3, category="off")
    assert res.strategy.endswith("+ltr")
    assert len(res.hits) == 3
    assert be.searches()[-1]["size"] >= 8


def test_compose_ends_with_the_quality_stage() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*hits()[: body["size"]])
    svc = service(be, QualityRerank(lambda: RerankBlend(ltr_weight=1.0, top_n=8)))
    res = svc.compose_search(
        image=Image.new("RGB", (32, 32), (200, 10, 10)), text="in red", size=3, category="off"
    )
    assert res.strategy.endswith("+ltr")
    assert [h.id for h in res.hits] == ltr_order(8, bm25_signal=False)[:3]
