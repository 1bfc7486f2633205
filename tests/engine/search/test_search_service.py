"""SearchService orchestration against a recording backend and a fake model (no cluster)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.errors import ClusterRequestError, InvalidInput, NotFound
from engine.queries import Filters
from engine.search.service import SearchOptions, SearchService
from tests.search_fakes import FakeBackend, FakeModel, hit, response, unit


def service(backend: FakeBackend, model: FakeModel | None = None, **opts: Any) -> SearchService:
    return SearchService(
        backend,  # type: ignore[arg-type]
        index="idx",
        pipeline="pipe",
        model=model or FakeModel(),
        options=SearchOptions(**opts),
    )


def photo() -> Image.Image:
    return Image.new("RGB", (32, 32), (200, 10, 10))


def knn_filter(body: dict[str, Any], field: str = "image_embedding") -> dict[str, Any]:
    q = body["query"]
    if "script_score" in q:
        q = q["script_score"]["query"]
    return q["knn"][field].get("filter", {})


def article_terms(body: dict[str, Any]) -> list[str]:
    clauses = knn_filter(body).get("bool", {}).get("filter", [])
    return [c["term"]["article_type"] for c in clauses if "article_type" in c.get("term", {})]


# --------------------------------------------------------------------------- image


def test_confident_category_restricts_the_second_query() -> None:
    be = FakeBackend()
    neighbours = [hit(str(i), 0.95 - i * 0.01, article_type="Shirts") for i in range(20)]
    be.on_search = lambda body, kw: response(*neighbours)
    res = service(be, vote_k=20, category_threshold=0.5).image_search(photo(), size=5)
    first, second = be.searches()
    assert article_terms(first) == []
    assert first["size"] == 20  # max(vote_k, size) neighbours, reused when not restricting
    assert article_terms(second) == ["Shirts"]
    assert res.category is not None and res.category.label == "Shirts"
    assert res.category.restricted and res.category.source == "predicted"
    assert res.strategy == "knn-category"
    assert all(kw["search_pipeline"] == "_none" for _, _, kw in be.calls if _ == "search")


def test_unsure_category_reuses_the_vote_neighbours() -> None:
    be = FakeBackend()
    types = ["Shirts", "Tshirts", "Dresses", "Casual Shoes"]
    neighbours = [hit(str(i), 0.9, article_type=types[i % 4]) for i in range(20)]
    be.on_search = lambda body, kw: response(*neighbours)
    model = FakeModel(article_probs=(0.25, 0.25, 0.25, 0.25))
    res = service(be, model).image_search(photo(), size=3, explain=True)
    assert len(be.searches()) == 1
    assert res.category is not None and not res.category.restricted
    assert [h.id for h in res.hits] == ["0", "1", "2"]
    assert res.hits[0].explain is not None
    assert res.hits[0].explain.vector == pytest.approx(0.8)


def test_vote_overrules_a_wrong_classifier() -> None:
    be = FakeBackend()
    neighbours = [hit(str(i), 0.95, article_type="Dresses") for i in range(20)]
    be.on_search = lambda body, kw: response(*neighbours)
    res = service(be, category_alpha=0.5).image_search(photo(), size=5)
    assert res.category is not None
    assert res.category.label == "Dresses"
    assert max(res.category.classifier, key=res.category.classifier.__getitem__) == "Shirts"


def test_hard_article_type_filter_skips_prediction() -> None:
    be = FakeBackend()
    res = service(be).image_search(photo(), Filters(article_type=("Jeans",)), size=5)
    (only,) = be.searches()
    assert article_terms(only) == ["Jeans"]
    assert res.category is not None and res.category.source == "filter"


def test_category_off_searches_once_unrestricted() -> None:
    be = FakeBackend()
    service(be).image_search(photo(), size=5, category="off")
    (only,) = be.searches()
    assert article_terms(only) == []


def test_more_like_item_uses_stored_vector_and_excludes_item() -> None:
    be = FakeBackend()
    be.docs["42"] = {
        "image_embedding": unit("x").tolist(),
        "article_type": "Tshirts",
        "binary_code": [-1, 5, 0, 0],
    }
    res = service(be).similar_to_item("42", size=5, coarse=True, explain=True)
    (body,) = be.searches()
    assert body["query"]["knn"]["binary_code"]["vector"] == [-1, 5, 0, 0]
    f = body["query"]["knn"]["binary_code"]["filter"]["bool"]
    assert {"ids": {"values": ["42"]}} in f["must_not"]
    assert {"term": {"article_type": "Tshirts"}} in f["filter"]
    assert body["rescore"]["window_size"] == 200
    assert "binary_code" in body["_source"]["includes"]
    assert res.category is not None and res.category.source == "item"
    with pytest.raises(NotFound):
        service(be).similar_to_item("nope")


def test_coarse_pass_reports_hamming_distance() -> None:
    be = FakeBackend()
    model = FakeModel()
    img = photo()
    code = model.codes(model.embed_images([img]))[0]
    flipped = code.copy()
    flipped[0] ^= 0b00000111
    be.on_search = lambda body, kw: response(
        hit("1", 0.9, article_type="Shirts", binary_code=[int(b) for b in flipped.view(np.int8)])
    )
    res = service(be, model).image_search(img, size=1, category="off", coarse=True, explain=True)
    assert res.strategy == "hamming-coarse+exact-rerank"
    assert res.hits[0].explain is not None and res.hits[0].explain.hamming == 3


# --------------------------------------------------------------------------- text


def test_hybrid_uses_installed_pipeline_by_name() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(hit("a", 0.9), hit("b", 0.5))
    res = service(be).text_search("red dress", size=2)
    (body,) = be.searches()
    assert "hybrid" in body["query"] and "search_pipeline" not in body
    # sub-query lists are normalised 60 deep even for a page of 2
    assert body["query"]["hybrid"]["pagination_depth"] == 60 and body["size"] == 2
    # the k-NN sub-query searches as many neighbours as the pipeline combines, not knn_k=100
    assert body["query"]["hybrid"]["queries"][1]["knn"]["text_embedding"]["k"] == 60
    assert be.calls[-1][2]["search_pipeline"] == "pipe"
    assert res.weights is not None and res.weights.vector == pytest.approx(0.7)
    assert [h.id for h in res.hits] == ["a", "b"]


def test_request_weights_travel_as_temporary_pipeline() -> None:
    be = FakeBackend()
    service(be).text_search("red dress", weights=(1.0, 3.0))
    (body,) = be.searches()
    proc = body["search_pipeline"]["phase_results_processors"][0]["normalization-processor"]
    assert proc["combination"]["parameters"]["weights"] == [0.25, 0.75]
    assert be.calls[-1][2]["search_pipeline"] is None


def test_missing_pipeline_falls_back_to_default_weights_in_body() -> None:
    be = FakeBackend()
    be.pipeline = None
    res = service(be).text_search("red dress")
    (body,) = be.searches()
    assert "search_pipeline" in body
    assert res.strategy == "hybrid-default-weights" and res.notes


def test_explain_breaks_hybrid_score_down() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(hit("a", 1.0), hit("b", 0.7))
    be.on_msearch = lambda bodies: [
        response(hit("a", 12.0), hit("c", 2.0)),
        response(hit("b", 0.9), hit("a", 0.8), hit("c", 0.6)),
    ]
    res = service(be).text_search("red dress", size=2, explain=True)
    a, b = res.hits
    assert a.explain is not None and b.explain is not None
    assert a.explain.bm25 == 12.0 and a.explain.bm25_normalized == 1.0
    assert a.explain.vector == pytest.approx(0.6)
    assert a.explain.vector_normalized == pytest.approx(2 / 3)
    assert a.explain.fused == pytest.approx(0.3 * 1.0 + 0.7 * 2 / 3)
    assert b.explain.bm25 is None and b.explain.fused == pytest.approx(0.7)
    (bodies,) = [c[1] for c in be.calls if c[0] == "msearch"]
    assert "multi_match" in bodies[0]["query"]["bool"]["must"][0]
    assert "knn" in bodies[1]["query"]


def test_rejected_hybrid_is_fused_client_side() -> None:
    be = FakeBackend()

    def reject(body: dict[str, Any], kw: dict[str, Any]) -> dict[str, Any]:
        raise ClusterRequestError("search idx: rejected", reason="pipeline not found")

    be.on_search = reject
    be.on_msearch = lambda bodies: [
        response(hit("a", 3.0), hit("b", 1.0)),
        response(hit("b", 0.9), hit("c", 0.5)),
    ]
    res = service(be).text_search("red dress", size=3)
    assert res.strategy == "client-fusion"
    assert [h.id for h in res.hits] == ["b", "a", "c"]


def test_bm25_and_vector_modes_and_query_vector_cache() -> None:
    be = FakeBackend()
    model = FakeModel()
    svc = service(be, model)
    svc.text_search("Red  Dress", mode="vector")
    svc.text_search("red dress", mode="vector")
    assert model.text_calls == 1
    svc.text_search("red dress", mode="bm25")
    assert model.text_calls == 1
    bodies = be.searches()
    assert "knn" in bodies[0]["query"] and "bool" in bodies[2]["query"]
    with pytest.raises(InvalidInput):
        svc.text_search("   ")
    with pytest.raises(InvalidInput):
        svc.text_search("x", mode="nope")


# --------------------------------------------------------------------------- compose


def test_compose_builds_soft_filter_and_excludes_source_item() -> None:
    be = FakeBackend()
    be.docs["7"] = {"image_embedding": unit("seven").tolist(), "article_type": "Shirts"}
    be.on_search = lambda body, kw: response(
        hit("9", 0.8 * 0.9, article_type="Shirts", attr_prob={"base_colour": {"black": 0.9}})
    )
    res = service(be).compose_search(
        item_id="7", text="this shirt but in black, not striped", explain=True
    )
    (body,) = be.searches()
    params = body["query"]["script_score"]["script"]["params"]
    assert set(params["wanted"]) == {
        "attr_prob.article_type.shirts",
        "attr_prob.base_colour.black",
    }
    assert params["unwanted"] == ["attr_prob.pattern.striped"]
    assert {"ids": {"values": ["7"]}} in knn_filter(body)["bool"]["must_not"]
    assert res.soft_filter is not None and res.soft_filter.applied
    assert res.soft_filter.wanted_words == ["shirt", "black"]
    ex = res.hits[0].explain
    assert ex is not None
    # shirts prob missing -> floor 0.05; black 0.9; striped missing -> 1 - 0 = 1
    assert ex.soft_factor == pytest.approx(0.05 * 0.9)
    assert ex.vector == pytest.approx(2 * (0.72 / 0.045) - 1)


def test_compose_vector_moves_toward_wanted_text() -> None:
    be = FakeBackend()
    model = FakeModel()
    svc = service(be, model, text_weight=1.0)
    img = photo()
    svc.compose_search(image=img, wanted=["red"], soft_filter=False, category="off")
    (body,) = be.searches()
    q = np.asarray(body["query"]["knn"]["image_embedding"]["vector"])
    red = model.embed_texts(["red"])[0]
    base = model.embed_images([img])[0]
    assert float(q @ red) > float(base @ red)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)


def test_compose_restricts_to_the_photo_category_unless_words_name_one() -> None:
    be = FakeBackend()
    be.docs["7"] = {"image_embedding": unit("seven").tolist(), "article_type": "Shirts"}
    neighbours = [hit(str(i), 0.95, article_type="Shirts") for i in range(20)]
    be.on_search = lambda body, kw: response(*neighbours[: body["size"]])
    res = service(be).compose_search(item_id="7", text="but in black", size=5)
    vote, main = be.searches()
    assert {"ids": {"values": ["7"]}} in knn_filter(vote)["bool"]["must_not"]
    assert article_terms(main) == ["Shirts"]
    assert main["query"]["script_score"]["query"]["knn"]["image_embedding"]["k"] == 200
    assert res.category is not None and res.category.restricted
    assert res.strategy == "knn+soft-filter+category"
    be.calls.clear()
    service(be).compose_search(item_id="7", text="the same as a dress", size=5)
    (only,) = be.searches()
    assert article_terms(only) == []


def test_compose_needs_exactly_one_image_source() -> None:
    with pytest.raises(InvalidInput):
        service(FakeBackend()).compose_search(text="red")


def test_hybrid_depth_comes_from_settings() -> None:
    from engine.settings import ApiSettings, Settings

    for depth, expected in ((20, 20), (0, None)):
        be = FakeBackend()
        be.on_search = lambda body, kw: response(hit("a", 0.9))
        settings = Settings(api=ApiSettings(search_hybrid_depth=depth))
        svc = SearchService.from_settings(settings, be, FakeModel())  # type: ignore[arg-type]
        assert svc.options.hybrid_depth == expected
        svc.text_search("red dress", size=5)
        (body,) = be.searches()
        assert body["query"]["hybrid"].get("pagination_depth") == expected
        # k follows the depth; page-deep lists keep knn_k (the hybrid query cuts nothing then)
        knn = body["query"]["hybrid"]["queries"][1]["knn"]["text_embedding"]
        assert knn["k"] == (expected or 100)
