"""Complete the look end to end on the bundled sample with the shipped models: ingest the sample
with the ingest library and the trained joint model, ingest the sample looks, query by id and by
photo through the HTTP API.

Runs on both engines (OpenSearch and Elasticsearch nodes) and needs both trained checkpoints (joint and compatibility); skipped with
the reason when a checkpoint is missing. Takes about a minute on 2 CPU cores (the ingest)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.backend import Backend
from engine.catalog import Product, load_catalog
from engine.errors import ModelUnavailable
from engine.looks.compat import CompatModel
from engine.looks.format import load_looks
from engine.looks.service import LookService
from engine.looks.slots import look_slot
from engine.settings import Settings
from ingest.looks import ingest_looks
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
def models(settings: Settings) -> tuple[Any, CompatModel]:
    from engine.models.joint import JointModel

    try:
        joint = JointModel.load(settings.models.joint_checkpoint, device="cpu")
        compat = CompatModel.load()
    except ModelUnavailable as exc:
        pytest.skip(f"model not available: {exc.message}")
    return joint, compat


@pytest.fixture(scope="module")
def client(
    cluster: Backend,
    settings: Settings,
    models: tuple[Any, CompatModel],
    products: dict[str, Product],
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[TestClient]:
    from ingest import ingest_products
    from ingest.encode import JointEncoder

    joint, compat = models
    tag = uuid.uuid4().hex[:8]
    products_index = f"{TEST_PREFIX}-products-ctl-{tag}"
    looks_index = f"{TEST_PREFIX}-looks-ctl-{tag}"
    for name in (products_index, looks_index):
        cluster.ensure_index(name)
    try:
        ingest_products(
            settings,
            CATALOG,
            images_dir=IMAGES,
            index=products_index,
            backend=cluster,
            encoder=JointEncoder(joint, "test"),
            state_dir=tmp_path_factory.mktemp("ingest-state"),
            progress=False,
        )
        cluster.refresh(products_index)
        report = ingest_looks(
            cluster,
            load_looks(SAMPLE / "looks.jsonl"),
            products_index=products_index,
            looks_index=looks_index,
            refresh=True,
        )
        assert report.indexed > 50 and not report.unknown_ids
        svc = LookService(
            cluster,
            products_index=products_index,
            looks_index=looks_index,
            model=compat,
            joint_loader=lambda: joint,
        )
        app = create_app(
            settings,
            backend=cluster,
            loaders={"joint": lambda: joint, "looks_service": lambda: svc},
        )
        with TestClient(app) as c:
            yield c
    finally:
        for name in (products_index, looks_index):
            cluster.delete_index(name)


def _items(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [it for items in body["slots"].values() for it in items]


def test_by_id_fills_complementary_slots(client: TestClient, products: dict[str, Product]) -> None:
    shirt = next(
        p
        for p in sorted(products.values(), key=lambda p: p.id)
        if p.article_type in ("Tshirts", "Shirts") and p.gender == "Men"
    )
    r = client.post("/complete-the-look", json={"item_id": shirt.id, "size": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] is True and body["query"]["slot"] == "top"
    assert body["slots"]["bottom"] and body["slots"]["shoes"]
    for it in _items(body):
        p = products[it["id"]]
        assert look_slot(p) == it["slot"] and p.gender in ("Men", "Unisex")
        assert it["reason"]["source"] in ("model", "look", "look+model")


def test_by_photo_predicts_the_slot(client: TestClient, products: dict[str, Product]) -> None:
    shoe = next(
        p
        for p in sorted(products.values(), key=lambda p: p.id)
        if p.article_type == "Casual Shoes" and (IMAGES / f"{p.id}.jpg").is_file()
    )
    r = client.post(
        "/complete-the-look",
        files={"file": ("q.jpg", (IMAGES / f"{shoe.id}.jpg").read_bytes(), "image/jpeg")},
        data={"size": "3"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["slot"] == "shoes"
    assert "shoes" not in body["slots"] and body["slots"]["top"]
