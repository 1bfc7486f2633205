"""Integration: our templates, pipeline and stored templates on a real node (issue 2)."""

from __future__ import annotations

import numpy as np
import pytest

from engine.backend import Backend
from engine.config.desired import desired_objects, template_id
from engine.config.installer import apply
from tests.conftest import BOTH_ENGINES, TEST_PREFIX

pytestmark = pytest.mark.opensearch
CLUSTER_ENGINES = BOTH_ENGINES


def _unit(seed: int, dim: int = 256) -> list[float]:
    v = np.random.default_rng(seed).normal(size=dim)
    return (v / np.linalg.norm(v)).tolist()


def _doc(
    pid: str, title: str, article: str, colour: str, gender: str, price: float, seed: int
) -> dict:
    vec = _unit(seed)
    return {
        "id": pid,
        "title": title,
        "article_type": article,
        "base_colour": colour,
        "colours": [colour],
        "gender": gender,
        "price": price,
        "in_stock": True,
        "attr_prob": {"base_colour": {colour.lower(): 0.9}},
        "image_embedding": vec,
        "text_embedding": vec,
        "joint_embedding": vec,
        "binary_code": [int(x) for x in np.packbits(np.array(vec) > 0).astype(np.int8)],
    }


@pytest.fixture
def indexed(cluster: Backend, products_index: str) -> str:
    docs = [
        _doc("a", "Red floral maxi dress", "Dresses", "Red", "Women", 1200, 1),
        _doc("b", "Blue slim fit denim jeans", "Jeans", "Blue", "Men", 1500, 2),
        _doc("c", "Black leather formal shoes", "Formal Shoes", "Black", "Men", 3000, 3),
    ]
    ok, errors = cluster.bulk(
        ({"_index": products_index, "_id": d["id"], "_source": d} for d in docs), refresh=True
    )
    assert ok == 3 and not errors
    return products_index


def _needs_mustache(cluster: Backend) -> None:
    if not cluster.supports("stored_script"):
        pytest.skip("stored search templates need lang-mustache (absent on this node)")


def test_template_gives_index_its_mapping(cluster: Backend, products_index: str) -> None:
    props = cluster.get_mapping(products_index)[products_index]["mappings"]["properties"]
    if cluster.engine == "elasticsearch":
        image, code = props["image_embedding"], props["binary_code"]
        assert (image["type"], image["similarity"]) == ("dense_vector", "cosine")
        assert image["index_options"]["type"] == "int8_hnsw"
        assert (code["element_type"], code["dims"]) == ("bit", 256)
        assert props["images"]["properties"]["embedding"]["type"] == "dense_vector"
        assert props["price"]["type"] == "float"
        return
    assert props["image_embedding"]["type"] == "knn_vector"
    assert props["image_embedding"]["method"]["engine"] == "lucene"
    assert props["binary_code"]["data_type"].lower() == "binary"
    assert props["price"]["type"] == "float"
    settings = cluster.get_settings(products_index)[products_index]["settings"]["index"]
    assert settings["knn"] == "true"
    assert settings["search"]["default_pipeline"] == f"{TEST_PREFIX}-hybrid"


def test_knn_query_returns_nearest(cluster: Backend, indexed: str) -> None:
    body = {"size": 1, "query": {"knn": {"image_embedding": {"vector": _unit(2), "k": 3}}}}
    hits = cluster.search(indexed, body)["hits"]["hits"]
    assert hits[0]["_id"] == "b"


def test_filtered_knn_respects_filter(cluster: Backend, indexed: str) -> None:
    # nearest to b's vector, but only women's items qualify
    body = {
        "size": 3,
        "query": {
            "knn": {
                "image_embedding": {
                    "vector": _unit(2),
                    "k": 3,
                    "filter": {"term": {"gender": "women"}},
                }
            }
        },
    }
    ids = [h["_id"] for h in cluster.search(indexed, body)["hits"]["hits"]]
    assert ids == ["a"]


def test_binary_hamming_knn(cluster: Backend, indexed: str) -> None:
    code = _doc("x", "x", "x", "x", "x", 0, 3)["binary_code"]
    body = {"size": 1, "query": {"knn": {"binary_code": {"vector": code, "k": 3}}}}
    hits = cluster.search(indexed, body)["hits"]["hits"]
    assert hits[0]["_id"] == "c"
    assert hits[0]["_score"] == pytest.approx(1.0)  # Hamming distance 0


def test_hybrid_query_through_pipeline(cluster: Backend, indexed: str) -> None:
    body = {
        "size": 3,
        "query": {
            "hybrid": {
                "queries": [
                    {"match": {"title": "jeans"}},
                    {"knn": {"text_embedding": {"vector": _unit(2), "k": 3}}},
                ]
            }
        },
    }
    hits = cluster.search(indexed, body, search_pipeline=f"{TEST_PREFIX}-hybrid")["hits"]["hits"]
    assert hits[0]["_id"] == "b"
    assert 0.0 <= hits[-1]["_score"] <= 1.0  # normalised scores


def test_stored_text_template_with_filters(cluster: Backend, indexed: str) -> None:
    _needs_mustache(cluster)
    tid = template_id(TEST_PREFIX, "text")
    res = cluster.search_template(indexed, tid, {"query": "red dress", "gender": "Women"})
    assert [h["_id"] for h in res["hits"]["hits"]] == ["a"]
    res = cluster.search_template(indexed, tid, {"query": "red dress", "gender": "Men"})
    assert res["hits"]["hits"] == []
    res = cluster.search_template(indexed, tid, {"query": "shoes jeans", "max_price": 2000})
    assert [h["_id"] for h in res["hits"]["hits"]] == ["b"]


def test_stored_vector_template(cluster: Backend, indexed: str) -> None:
    _needs_mustache(cluster)
    tid = template_id(TEST_PREFIX, "vector")
    res = cluster.search_template(indexed, tid, {"vector": _unit(3), "k": 3, "size": 1})
    assert res["hits"]["hits"][0]["_id"] == "c"
    assert "image_embedding" not in res["hits"]["hits"][0]["_source"]


def test_stored_compose_template_soft_filter(cluster: Backend, indexed: str) -> None:
    _needs_mustache(cluster)
    tid = template_id(TEST_PREFIX, "compose")
    # the query vector is closest to "a" (red), but we want blue: the soft filter reorders
    res = cluster.search_template(
        indexed, tid, {"vector": _unit(1), "k": 3, "wanted": ["attr_prob.base_colour.blue"]}
    )
    assert res["hits"]["hits"][0]["_id"] == "b"


def test_installer_is_idempotent(cluster: Backend) -> None:
    objects = desired_objects(TEST_PREFIX, replicas=0)
    changes = apply(cluster, objects)
    unsupported = {"unsupported"} if not cluster.supports("stored_script") else set()
    assert {c.action for c in changes} == {"unchanged"} | unsupported
    assert len(changes) == len(objects)
    assert {c.name for c in changes if c.action == "unsupported"} == {
        o.name for o in objects if not cluster.supports(o.kind)
    }


def test_installer_repairs_pipeline_drift(cluster: Backend) -> None:
    objects = desired_objects(TEST_PREFIX, replicas=0)
    pipe = next(o for o in objects if o.kind == "search_pipeline")
    drifted = {**pipe.body, "description": "changed by hand"}
    cluster.put_search_pipeline(pipe.name, drifted)
    dry = {(c.kind, c.name): c.action for c in apply(cluster, objects, dry_run=True)}
    assert dry[(pipe.kind, pipe.name)] == "updated"
    apply(cluster, objects)
    again = {(c.kind, c.name): c.action for c in apply(cluster, objects)}
    assert again[(pipe.kind, pipe.name)] == "unchanged"


def test_installer_repairs_drift(cluster: Backend) -> None:
    _needs_mustache(cluster)
    objects = desired_objects(TEST_PREFIX, replicas=0)
    script = next(o for o in objects if o.kind == "stored_script")
    cluster.put_stored_script(script.name, {"script": {"lang": "mustache", "source": "{}"}})
    dry = {c.name: c.action for c in apply(cluster, objects, dry_run=True)}
    assert dry[script.name] == "updated"
    assert cluster.get_stored_script(script.name)["source"] == "{}"  # dry run changed nothing
    apply(cluster, objects)
    assert cluster.get_stored_script(script.name)["source"] == script.body["script"]["source"]
