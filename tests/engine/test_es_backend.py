"""Elasticsearch backend behaviour on the real node (Elasticsearch only)."""

from __future__ import annotations

import pytest

from engine import queries as q
from engine.backend import Backend
from engine.es_backend import ElasticsearchBackend

CLUSTER_ENGINES = ("elasticsearch",)


def test_mapped_fields_answers_for_every_name_asked(cluster: Backend, products_index: str) -> None:
    # regression: the names went comma-joined, which the 8.x client sends in the body as ONE
    # name, so any call with two or more soft-filter fields found none mapped (issue 16)
    assert isinstance(cluster, ElasticsearchBackend)
    doc = {"id": "a", "attr_prob": {"base_colour": {"black": 0.9}, "article_type": {"shirts": 1}}}
    cluster.index_doc(products_index, "a", doc, refresh=True)
    asked = ["attr_prob.base_colour.black", "attr_prob.article_type.shirts", "attr_prob.x.y"]
    got = cluster.mapped_fields(products_index, asked)
    assert got == {"attr_prob.base_colour.black", "attr_prob.article_type.shirts"}
    assert cluster.mapped_fields(products_index, []) == set()


def _unit(i: int, dims: int = 256) -> list[float]:
    v = [0.0] * dims
    v[i] = 1.0
    return v


@pytest.mark.parametrize("mode", ["fusion", "native"])
def test_hybrid_both_ways_merges_both_lists(
    cluster: Backend, products_index: str, mode: str
) -> None:
    # "a" matches the words only, "b" the vector only, "c" both: each way must return all three,
    # "c" first; the weights (from a temporary pipeline) are read the same way by both
    assert isinstance(cluster, ElasticsearchBackend)
    docs = {"a": ("red dress", _unit(1)), "b": ("blue jeans", _unit(0)), "c": ("red top", _unit(0))}
    for doc_id, (title, vec) in docs.items():
        cluster.index_doc(
            products_index, doc_id, {"id": doc_id, "title": title, "text_embedding": vec}
        )
    cluster.refresh(products_index)
    body = q.hybrid_search_body(
        "red", _unit(0), k=3, size=3, pipeline=q.hybrid_pipeline_body((0.5, 0.5)), source=None
    )
    backend = ElasticsearchBackend(
        cluster.client,
        cluster.cluster.model_copy(update={"es_hybrid": mode}),  # type: ignore[arg-type]
    )
    hits = backend.search(products_index, body)["hits"]["hits"]
    assert [h["_id"] for h in hits][0] == "c"
    assert {h["_id"] for h in hits} == {"a", "b", "c"}
    if mode == "fusion":  # min-max + mean: the best of both lists scores exactly 1
        assert hits[0]["_score"] == pytest.approx(1.0)
