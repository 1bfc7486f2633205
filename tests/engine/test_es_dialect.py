"""Golden files of the Elasticsearch dialect (engine/es_dialect.py): the bodies the
Elasticsearch backend sends for each product search builder, the complete-the-look queries and
the index templates, pinned in ``tests/golden/es/<case>.json`` (``python -m tests.regen_golden``
rewrites them), plus the dialect's semantics checked by hand."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest

from engine import es_dialect as es
from engine import look_queries as lq
from engine import queries as q
from engine.config.desired import desired_objects
from engine.errors import ConfigError
from engine.search.fusion import fuse
from tests.engine.test_queries import ALL, CASES, GOLDEN_DIR, SOFT, VEC

ES_GOLDEN_DIR = GOLDEN_DIR / "es"
MAPPED = ("attr_prob.base_colour.black", "attr_prob.pattern.striped")


def _template(name: str) -> dict[str, Any]:
    objs = desired_objects("outfit", replicas=0)
    return next(o.body for o in objs if o.kind == "index_template" and o.name == f"outfit-{name}")


ES_CASES: dict[str, Callable[[], Any]] = {
    **{
        name: (lambda name=name: es.search_body(CASES[name](), MAPPED))
        for name in (
            "bm25",
            "bm25_filtered",
            "vector_text",
            "vector_filtered",
            "bm25_scores",
            "category_vote",
            "image_category",
            "compose_soft",
            "compose_plain",
            "explain_source",
        )
    },
    "compose_soft_unmapped": lambda: es.search_body(
        q.compose_search_body(VEC, SOFT, ALL, k=100, size=10), mapped=()
    ),
    "hybrid_parts": lambda: es.hybrid_parts(
        q.hybrid_search_body("red dresses", VEC, ALL, k=100, size=20, pagination_depth=60)
    ),
    "hybrid_native": lambda: es.native_hybrid_body(
        q.hybrid_search_body("red dresses", VEC, ALL, k=100, size=20, pagination_depth=60),
        (0.4, 0.6),
    ),
    "image_coarse": lambda: es.exact_rerank(CASES["image_coarse"]()),
    "hybrid_stored_parts": lambda: es.hybrid_parts(CASES["hybrid_stored"]()),
    "hybrid_stored_native": lambda: es.native_hybrid_body(CASES["hybrid_stored"](), (0.4, 0.6)),
    "looks_products_knn": lambda: es.search_body(
        lq.knn_products_query(VEC, 10, lq.product_filters(slot="top", genders=["women"]))
    ),
    "looks_nested_items": lambda: es.search_body(
        lq.similar_look_items_query(VEC, "top", 5, gender=["women"], exclude_look_ids=["l1"])
    ),
    "template_products": lambda: es.index_template(_template("products")),
    "template_looks": lambda: es.index_template(_template("looks")),
}


def render(case: str) -> str:
    return json.dumps(ES_CASES[case](), indent=2, sort_keys=True) + "\n"


@pytest.mark.parametrize("case", sorted(ES_CASES))
def test_es_body_matches_golden(case: str) -> None:
    path = ES_GOLDEN_DIR / f"{case}.json"
    assert path.is_file(), f"missing {path}; run python -m tests.regen_golden"
    assert render(case) == path.read_text(), f"{case} changed; regenerate and review the diff"


def test_no_stale_es_golden_files() -> None:
    assert {p.stem for p in ES_GOLDEN_DIR.glob("*.json")} == set(ES_CASES)


def test_top_level_knn_becomes_the_knn_section_with_filter() -> None:
    body = es.search_body(q.vector_search_body("image_embedding", VEC, ALL, k=5, size=10))
    assert "query" not in body
    knn = body["knn"]
    assert knn["field"] == "image_embedding" and knn["k"] == 10
    assert knn["num_candidates"] >= knn["k"]
    assert knn["filter"] == q.filter_query(ALL)


def test_no_opensearch_only_keys_survive() -> None:
    text = json.dumps([ES_CASES[c]() for c in ES_CASES if not c.startswith("template")])
    for key in ('"vector":', '"hybrid"', '"search_pipeline"', '"painless"', '"knn_score"'):
        assert key not in text
    tpl = json.dumps(ES_CASES["template_products"]())
    for key in ("knn_vector", "search.default_pipeline", "synonym_graph", '"knn": true'):
        assert key not in tpl


@pytest.mark.parametrize("p", [0.0, 0.02, 0.05, 0.3, 0.95, 0.96, 1.0, None])
def test_soft_filter_functions_equal_the_script(p: float | None) -> None:
    """Evaluate the function_score functions by hand against the painless formula."""
    floor = 0.05
    funcs = es.soft_filter_functions(["w"], ["u"], floor, mapped=("w", "u"))

    def applies(flt: dict[str, Any], v: float | None) -> bool:
        if "bool" in flt:
            return not applies(flt["bool"]["must_not"][0], v)
        rng = next(iter(flt["range"].values()))
        if v is None:
            return False
        return ("gte" not in rng or v >= rng["gte"]) and ("gt" not in rng or v > rng["gt"])

    factor = 1.0
    for f in funcs:
        if not applies(f["filter"], p):
            continue
        if "weight" in f:
            factor *= f["weight"]
        elif "field_value_factor" in f:
            factor *= p if p is not None else f["field_value_factor"]["missing"]
        else:
            spec = f["linear"]["u"]
            s = spec["scale"] / (1 - spec["decay"])
            factor *= 1.0 if p is None else max(0.0, (s - abs(p - spec["origin"])) / s)
    pv = 0.0 if p is None else p
    assert factor == pytest.approx(max(pv, floor) * max(1.0 - pv, floor))


def test_hybrid_fusion_is_the_normalisation_processor() -> None:
    responses = [
        {"took": 2, "hits": {"hits": [{"_id": "a", "_score": 9.0}, {"_id": "b", "_score": 3.0}]}},
        {"took": 1, "hits": {"hits": [{"_id": "b", "_score": 0.9}, {"_id": "c", "_score": 0.7}]}},
    ]
    out = es.fuse_responses(responses, (0.4, 0.6), size=2)
    expected = fuse([{"a": 9.0, "b": 3.0}, {"b": 0.9, "c": 0.7}], (0.4, 0.6))[:2]
    assert [(h["_id"], h["_score"]) for h in out["hits"]["hits"]] == [
        (f.doc_id, f.score) for f in expected
    ]


def test_exact_rerank_orders_by_cosine_and_drops_vectors() -> None:
    res = {
        "hits": {
            "hits": [
                {"_id": "far", "_score": 1.0, "_source": {"image_embedding": [0.0, 1.0]}},
                {"_id": "near", "_score": 0.9, "_source": {"image_embedding": [1.0, 0.1]}},
            ]
        }
    }
    out = es.rerank_exact(res, "image_embedding", [1.0, 0.0], size=2)
    hits = out["hits"]["hits"]
    assert [h["_id"] for h in hits] == ["near", "far"]
    assert hits[1]["_score"] == pytest.approx(0.5)  # cos 0 -> (1 + 0) / 2
    assert all("image_embedding" not in h["_source"] for h in hits)


def test_untranslatable_scripts_are_refused() -> None:
    body = {"query": {"script_score": {"query": {"match_all": {}}, "script": {"source": "1"}}}}
    with pytest.raises(ConfigError, match="lang-painless"):
        es.search_body(body)
