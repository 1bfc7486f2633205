"""Search end to end on the bundled sample: ingest it once per module into a fresh index with the
ingest library and the shipped joint model, then query through the service and the HTTP API.

Needs the OpenSearch node (``opensearch`` marker) and the trained checkpoint; skipped with the
reason when the checkpoint is missing. Takes ~1 minute on 2 CPU cores (mostly the ingest)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.app import create_app
from engine.backend import Backend
from engine.catalog import Product, is_test_id, load_catalog
from engine.config.desired import template_id
from engine.errors import ModelUnavailable
from engine.queries import (
    Filters,
    SoftFilter,
    compose_search_body,
    template_params,
    vector_search_body,
)
from engine.result_fields import StoredResultsCheck
from engine.search.service import SearchService
from engine.settings import Settings
from tests.conftest import BOTH_ENGINES, SAMPLE, TEST_PREFIX

pytestmark = [pytest.mark.opensearch, pytest.mark.slow]
CLUSTER_ENGINES = BOTH_ENGINES

CATALOG = SAMPLE / "catalog.jsonl"
IMAGES = SAMPLE / "images"


@pytest.fixture(scope="module")
def products() -> dict[str, Product]:
    if not CATALOG.is_file():
        pytest.skip("sample/catalog.jsonl is missing")
    return {p.id: p for p in load_catalog(CATALOG)}


@pytest.fixture(scope="module")
def model(settings: Settings) -> Any:
    from engine.models.joint import JointModel

    try:
        return JointModel.load(
            settings.models.joint_checkpoint, device="cpu", num_threads=settings.models.num_threads
        )
    except ModelUnavailable as exc:
        pytest.skip(f"joint model not available: {exc.message}")


@pytest.fixture(scope="module")
def sample_index(
    cluster: Backend,
    settings: Settings,
    model: Any,
    products: dict[str, Product],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    from ingest import ingest_products
    from ingest.encode import JointEncoder

    name = f"{TEST_PREFIX}-products-search-{uuid.uuid4().hex[:8]}"
    cluster.ensure_index(name)
    try:
        report = ingest_products(
            settings,
            CATALOG,
            images_dir=IMAGES,
            index=name,
            backend=cluster,
            encoder=JointEncoder(model, "test"),
            state_dir=tmp_path_factory.mktemp("ingest-state"),
            progress=False,
        )
        assert cluster.count(name) == len(products), report
        yield name
    finally:
        cluster.delete_index(name)


@pytest.fixture(scope="module")
def svc(cluster: Backend, settings: Settings, model: Any, sample_index: str) -> SearchService:
    return SearchService.from_settings(settings, cluster, model, index=sample_index)


@pytest.fixture(scope="module")
def client(
    cluster: Backend, settings: Settings, model: Any, svc: SearchService
) -> Iterator[TestClient]:
    app = create_app(
        settings, backend=cluster, loaders={"joint": lambda: model, "search_service": lambda: svc}
    )
    with TestClient(app) as c:
        yield c


def photo_bytes(item_id: str) -> bytes:
    return (IMAGES / f"{item_id}.jpg").read_bytes()


def photo(item_id: str) -> Image.Image:
    return Image.open(io.BytesIO(photo_bytes(item_id))).convert("RGB")


def first_test_item(products: dict[str, Product], **attrs: str) -> Product:
    for p in sorted(products.values(), key=lambda p: p.id):
        wanted = all(getattr(p, k) == v for k, v in attrs.items())
        if wanted and is_test_id(p.id) and (IMAGES / f"{p.id}.jpg").is_file():
            return p
    pytest.skip(f"no photographed test item with {attrs} in the sample")


FOOTWEAR = {
    "Casual Shoes",
    "Sports Shoes",
    "Formal Shoes",
    "Heels",
    "Flats",
    "Sandals",
    "Flip Flops",
}


# --------------------------------------------------------------------------- text


def test_red_dresses_come_first(client: TestClient, products: dict[str, Product]) -> None:
    red_dresses = {
        p.id for p in products.values() if p.article_type == "Dresses" and p.base_colour == "Red"
    }
    assert len(red_dresses) >= 2
    r = client.post("/search/text", json={"query": "red dresses", "size": 10})
    assert r.status_code == 200, r.text
    ids = [h["id"] for h in r.json()["hits"]]
    assert set(ids[: len(red_dresses)]) == red_dresses, r.json()["hits"][:4]


def test_hybrid_explain_reproduces_server_scores(svc: SearchService) -> None:
    res = svc.text_search("black casual shirt for men", size=10, explain=True)
    assert res.strategy == "hybrid" and len(res.hits) == 10
    for h in res.hits:
        assert h.explain is not None and h.explain.fused is not None
        assert h.explain.fused == pytest.approx(h.score, abs=1e-4), h


def test_request_weights_reorder(svc: SearchService) -> None:
    q = "blue checked shirt"
    bm25 = [h.id for h in svc.text_search(q, size=5, mode="bm25").hits]
    vec = [h.id for h in svc.text_search(q, size=5, mode="vector").hits]
    assert bm25 != vec
    lexical = [h.id for h in svc.text_search(q, size=5, weights=(1.0, 0.0)).hits]
    semantic = [h.id for h in svc.text_search(q, size=5, weights=(0.0, 1.0)).hits]
    assert lexical[:3] == bm25[:3]
    assert semantic[:3] == vec[:3]


def test_text_filters_respected(client: TestClient) -> None:
    filters = {"gender": ["Women"], "colour": ["Black"], "max_price": 2000, "in_stock": True}
    r = client.post("/search/text", json={"query": "dress", "size": 20, "filters": filters})
    assert r.status_code == 200, r.text
    hits = r.json()["hits"]
    assert hits
    for h in hits:
        assert h["gender"] == "Women"
        assert "Black" in (h["colours"] or [])
        assert h["price"] <= 2000 and h["in_stock"] is True


# --------------------------------------------------------------------------- image


def test_shoe_photo_returns_shoes(client: TestClient, products: dict[str, Product]) -> None:
    shoe = first_test_item(products, master_category="Footwear")
    r = client.post(
        "/search/image",
        files={"file": (f"{shoe.id}.jpg", photo_bytes(shoe.id), "image/jpeg")},
        data={"size": "5", "filters": f'{{"exclude_ids": ["{shoe.id}"]}}', "explain": "true"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    types = [h["article_type"] for h in body["hits"]]
    assert shoe.id not in [h["id"] for h in body["hits"]]
    assert sum(t in FOOTWEAR for t in types) >= 4, (types, body["category"])
    assert body["category"]["label"] in FOOTWEAR


def test_more_like_this_item(svc: SearchService, products: dict[str, Product]) -> None:
    item = first_test_item(products, article_type="Tshirts")
    res = svc.similar_to_item(item.id, size=5)
    assert item.id not in [h.id for h in res.hits]
    assert all(h.article_type == "Tshirts" for h in res.hits)


def test_image_filters_respected(svc: SearchService, products: dict[str, Product]) -> None:
    item = first_test_item(products, master_category="Footwear")
    f = Filters(gender=("Men",), max_price=3000, exclude_ids=(item.id,))
    res = svc.image_search(photo(item.id), f, size=10, category="off")
    assert res.hits
    for h in res.hits:
        assert h.gender == "Men" and (h.price or 0) <= 3000 and h.id != item.id


def test_coarse_pass_agrees_with_exact_search(
    svc: SearchService, products: dict[str, Product]
) -> None:
    recalls = []
    for item in sorted(products.values(), key=lambda p: p.id)[:20]:
        exact = svc.similar_to_item(item.id, size=10, category="off", coarse=False)
        coarse = svc.similar_to_item(item.id, size=10, category="off", coarse=True, explain=True)
        assert coarse.strategy.startswith("hamming-coarse+exact-rerank")
        assert all(h.explain and h.explain.hamming is not None for h in coarse.hits)
        got = {h.id for h in coarse.hits}
        recalls.append(len(got & {h.id for h in exact.hits}) / 10)
    # 200 coarse candidates out of 322 items: the exact top 10 should nearly always survive
    assert sum(recalls) / len(recalls) >= 0.9, recalls


def test_photo_search_reranks_by_attribute_agreement(
    svc: SearchService,
    settings: Settings,
    cluster: Backend,
    model: Any,
    sample_index: str,
    products: dict[str, Product],
) -> None:
    """Photo search re-scores its top neighbours by colour x type agreement: each hit's score is
    its cosine times its factor, in descending order; without the re-rank, plain k-NN order.
    (Whether it helps is measured by the evaluation's search task on the full catalog.)"""
    from dataclasses import replace

    options = replace(svc.options, attribute_rerank=None)
    plain = SearchService.from_settings(
        settings, cluster, model, index=sample_index, options=options
    )
    items = [p for p in sorted(products.values(), key=lambda p: p.id) if is_test_id(p.id)][:5]
    for item in items:
        f = Filters(exclude_ids=(item.id,))
        rr = svc.image_search(photo(item.id), f, size=5, explain=True)
        assert rr.strategy.endswith("+attribute-rerank")
        for h in rr.hits:
            assert h.explain is not None and h.explain.attribute_factor is not None
            assert 0 < h.explain.attribute_factor <= 1
            expected = max(h.explain.vector or 0.0, 0.0) * h.explain.attribute_factor
            assert h.score == pytest.approx(expected, abs=1e-4)
        scores = [h.score for h in rr.hits]
        assert scores == sorted(scores, reverse=True)
        knn = plain.image_search(photo(item.id), f, size=5)
        assert not knn.strategy.endswith("+attribute-rerank")
        assert [h.score for h in knn.hits] == sorted((h.score for h in knn.hits), reverse=True)


# --------------------------------------------------------------------------- compose


def test_this_shirt_but_in_black(client: TestClient, products: dict[str, Product]) -> None:
    source = products["12367"]  # Reid & Taylor Men White Shirt
    assert source.article_type == "Shirts" and source.base_colour == "White"
    r = client.post(
        "/search/compose",
        files={"file": ("q.jpg", photo_bytes(source.id), "image/jpeg")},
        data={"text": "this shirt but in black", "size": "5", "explain": "true"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    hits = body["hits"]
    fields = {v["field"] for v in body["soft_filter"]["wanted"]}
    assert "attr_prob.base_colour.black" in fields
    assert hits[0]["base_colour"] == "Black" and hits[0]["article_type"] == "Shirts", hits[:3]
    assert sum(h["base_colour"] == "Black" for h in hits[:3]) >= 2


def test_compose_by_item_with_filters(svc: SearchService, products: dict[str, Product]) -> None:
    res = svc.compose_search(
        item_id="12367", text="in blue", filters=Filters(gender=("Men",)), size=10
    )
    assert "12367" not in [h.id for h in res.hits]
    assert res.hits and all(h.gender == "Men" for h in res.hits)


# --------------------------------------------------------------------------- errors


def test_bad_uploads_on_the_real_app(client: TestClient, settings: Settings) -> None:
    r = client.post("/search/image", files={"file": ("x.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_image"
    r = client.post("/search/image", files={"file": ("x.jpg", b"", "image/jpeg")})
    assert r.status_code == 422 and "empty" in r.json()["message"]
    big = b"\xff\xd8" + b"\0" * settings.api.max_upload_bytes
    r = client.post("/search/compose", files={"file": ("x.jpg", big, "image/jpeg")})
    assert r.status_code == 413 and r.json()["code"] == "payload_too_large"
    r = client.post("/search/image", json={"item_id": "no-such-item"})
    assert r.status_code == 404


# --------------------------------------------------------------------------- stored templates


def _ids(res: dict[str, Any]) -> list[str]:
    return [h["_id"] for h in res["hits"]["hits"]]


def test_stored_templates_match_the_builders(
    cluster: Backend, svc: SearchService, sample_index: str, products: dict[str, Product]
) -> None:
    if not cluster.supports("stored_script"):
        pytest.skip("stored search templates need lang-mustache (absent on this node)")
    f = Filters(gender=("Men",), max_price=3000)
    params = template_params(f, size=10)
    text = cluster.search_template(
        sample_index, template_id(TEST_PREFIX, "text"), {**params, "query": "blue shirt"}
    )
    assert _ids(text) == [h.id for h in svc.text_search("blue shirt", f, size=10, mode="bm25").hits]
    vec = svc.embed_text("blue shirt").tolist()
    hybrid = cluster.search_template(
        sample_index,
        template_id(TEST_PREFIX, "hybrid"),
        {**params, "query": "blue shirt", "vector": vec},
        search_pipeline=svc.pipeline,
    )
    assert _ids(hybrid) == [h.id for h in svc.text_search("blue shirt", f, size=10).hits]
    item_vec, _ = svc.item_vector("12367")
    knn = cluster.search_template(
        sample_index, template_id(TEST_PREFIX, "vector"), {**params, "vector": item_vec.tolist()}
    )
    body = vector_search_body("image_embedding", item_vec, f, k=100, size=10)
    assert _ids(knn) == _ids(cluster.search(sample_index, body, search_pipeline="_none"))
    compose = cluster.search_template(
        sample_index,
        template_id(TEST_PREFIX, "compose"),
        {**params, "vector": item_vec.tolist(), "wanted": ["attr_prob.base_colour.black"]},
    )
    body = compose_search_body(
        item_vec, SoftFilter(wanted=("attr_prob.base_colour.black",)), f, k=100, size=10
    )
    assert _ids(compose) == _ids(cluster.search(sample_index, body, search_pipeline="_none"))


# --------------------------------------------------------------------------- quality re-rank


def test_live_ltr_blend_reorders_real_results(
    cluster: Backend, settings: Settings, model: Any, sample_index: str, svc: SearchService
) -> None:
    from engine.search.quality import QualityRerank
    from engine.tuning.weights import BlendSettings, TuningStore

    store = TuningStore(cluster, settings.cluster, blend_ttl_s=0.0)
    existed = cluster.index_exists(store.index)
    try:
        store.update(blend=BlendSettings(ltr_weight=1.0, top_n=20, enabled=True), actor="test")
        ltr_svc = SearchService.from_settings(
            settings, cluster, model, index=sample_index, quality=QualityRerank(store.blend)
        )
        query = "blue shirt"
        res = ltr_svc.text_search(query, size=10, explain=True)
        assert res.strategy.endswith("+ltr")
        # weight 1: ordered by the model's score alone, over the hybrid top 20
        scores = [h.explain.ltr if h.explain else None for h in res.hits]
        assert all(s is not None for s in scores)
        assert scores == sorted(scores, reverse=True)  # type: ignore[type-var]
        top20 = [h.id for h in svc.text_search(query, size=20).hits]
        assert {h.id for h in res.hits} <= set(top20)
        assert [h.id for h in res.hits] != top20[:10]  # the business signals moved something
        # a merchandiser sets the weight to 0: the next query serves the hybrid order
        store.update(blend=BlendSettings(ltr_weight=0.0, top_n=20, enabled=True), actor="test")
        plain = ltr_svc.text_search(query, size=10)
        assert plain.strategy == "hybrid" and [h.id for h in plain.hits] == top20[:10]
    finally:
        if not existed and cluster.index_exists(store.index):
            cluster.delete_index(store.index)


# --------------------------------------------------------------------------- stored result fields


def _source_only(cluster: Backend, settings: Settings, model: Any, index: str, **kw: Any) -> Any:
    """The same service reading every hit out of ``_source`` (as for an index without stored
    result fields)."""
    return SearchService(
        cluster,
        index=index,
        pipeline=settings.cluster.hybrid_pipeline,
        model=model,
        stored_results=StoredResultsCheck(lambda: {}),  # an empty mapping stores nothing
        **kw,
    )


def test_hits_from_stored_fields_equal_hits_from_source(
    cluster: Backend,
    settings: Settings,
    model: Any,
    sample_index: str,
    svc: SearchService,
    products: dict[str, Product],
) -> None:
    assert svc.stored_results(), "the shipped template stores the result fields"
    assert svc.stored_results.probabilities(), "and the attribute probabilities"
    plain = _source_only(cluster, settings, model, sample_index)
    item = first_test_item(products, article_type="Tshirts")
    calls = [
        lambda s: s.text_search("blue shirt", size=10),
        lambda s: s.text_search("Blue Shirt", size=10, mode="bm25"),
        lambda s: s.text_search("red dress", size=10, mode="vector"),
        lambda s: s.similar_to_item(item.id, size=10),
        lambda s: s.image_search(photo(item.id), size=10),
        lambda s: s.similar_to_item(item.id, size=10, coarse=True),
        lambda s: s.compose_search(item_id=item.id, text="in black", size=10),
        # the re-rank's attribute factors, read from stored probabilities or from _source
        lambda s: s.similar_to_item(item.id, size=10, explain=True),
        lambda s: s.compose_search(item_id=item.id, text="in black", size=10, explain=True),
    ]
    for call in calls:
        fast, slow = call(svc), call(plain)
        assert fast.hits, fast
        assert [h.model_dump() for h in fast.hits] == [h.model_dump() for h in slow.hits]
    shown = [h for h in svc.text_search("shirt", size=20).hits if h.colours]
    assert shown and all(isinstance(h.colours, list) for h in shown)
    # values come back as written, not as the keyword normaliser indexes them
    assert any(h.article_type and h.article_type != h.article_type.lower() for h in shown)


def test_stored_fields_follow_partial_updates(
    cluster: Backend, sample_index: str, svc: SearchService
) -> None:
    hit = svc.text_search("shirt", size=1).hits[0]
    old = cluster.get(sample_index, hit.id)
    try:
        ok, errors = cluster.bulk(
            [
                {
                    "_op_type": "update",
                    "_index": sample_index,
                    "_id": hit.id,
                    "doc": {"price": 1234.5, "in_stock": not bool(old.get("in_stock", True))},
                }
            ],
            refresh=True,
        )
        assert ok == 1 and not errors
        again = next(h for h in svc.text_search("shirt", size=1).hits if h.id == hit.id)
        assert again.price == 1234.5
        assert again.in_stock is (not bool(old.get("in_stock", True)))
    finally:
        restore = {k: old[k] for k in ("price", "in_stock") if k in old}
        cluster.bulk(
            [{"_op_type": "update", "_index": sample_index, "_id": hit.id, "doc": restore}],
            refresh=True,
        )


def test_ltr_stage_reads_stored_fields(
    cluster: Backend, settings: Settings, model: Any, sample_index: str
) -> None:
    from engine.search.quality import QualityRerank
    from engine.tuning.weights import BlendSettings, TuningStore

    store = TuningStore(cluster, settings.cluster, blend_ttl_s=0.0)
    existed = cluster.index_exists(store.index)
    try:
        store.update(blend=BlendSettings(ltr_weight=1.0, top_n=20, enabled=True), actor="test")
        quality = QualityRerank(store.blend)
        fast = SearchService.from_settings(
            settings, cluster, model, index=sample_index, quality=quality
        )
        slow = _source_only(cluster, settings, model, sample_index, quality=quality)
        a = fast.text_search("blue shirt", size=10, explain=True)
        b = slow.text_search("blue shirt", size=10, explain=True)
        assert a.strategy.endswith("+ltr") and b.strategy.endswith("+ltr")
        assert [h.id for h in a.hits] == [h.id for h in b.hits]
        ltr_a = [h.explain.ltr for h in a.hits if h.explain]
        ltr_b = [h.explain.ltr for h in b.hits if h.explain]
        assert ltr_a == pytest.approx(ltr_b, rel=1e-4, abs=1e-5)
    finally:
        if not existed and cluster.index_exists(store.index):
            cluster.delete_index(store.index)
