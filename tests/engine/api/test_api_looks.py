"""``POST /complete-the-look`` and ``GET /looks/{id}`` through the real app and the real node.

Products of the sample catalog are indexed with deterministic fake vectors and the sample looks
are ingested; the compatibility model is a seeded, untrained one and photos are embedded by a
small fake joint model, so these tests check the plumbing (inputs, sources, filters, reasons,
errors), not recommendation quality (that is the evaluation's job)."""

from __future__ import annotations

import io
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.app import create_app
from engine.backend import Backend
from engine.catalog import Product
from engine.looks.compat import CompatModel, build_net
from engine.looks.format import load_looks
from engine.looks.service import CompleteRequest, LookService
from engine.looks.slots import look_slot
from engine.settings import Settings
from ingest.looks import ingest_looks
from tests.conftest import BOTH_ENGINES, SAMPLE, TEST_PREFIX
from tests.ingest.test_looks_ingest import hashed_unit, index_products, sample_products

pytestmark = pytest.mark.opensearch
CLUSTER_ENGINES = BOTH_ENGINES


class FakeJoint:
    """Embeds a photo by its mean colour; 'predicts' a T-shirt."""

    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        rows = []
        for img in images:
            r, g, b = (int(c) // 32 for c in np.asarray(img.convert("RGB")).mean(axis=(0, 1)))
            rows.append(hashed_unit("photo", str(r), str(g), str(b)))
        return np.stack(rows)

    def predict_attributes(self, x: Any, top_k: int | None = 5) -> list[dict[str, Any]]:
        one = {
            "article_type": {"Tshirts": 0.9},
            "sub_category": {"Topwear": 0.95},
            "master_category": {"Apparel": 0.99},
            "gender": {"Men": 0.8},
        }
        return [one for _ in range(len(x))]


@pytest.fixture(scope="module")
def compat() -> CompatModel:
    torch.manual_seed(0)
    return CompatModel(build_net({}).eval(), {})


@pytest.fixture(scope="module")
def indices(cluster: Backend) -> Iterator[tuple[str, str]]:
    """Fresh products and looks indices for the module (our templates apply), deleted after."""
    tag = uuid.uuid4().hex[:8]
    names = (f"{TEST_PREFIX}-products-ctl-{tag}", f"{TEST_PREFIX}-looks-ctl-{tag}")
    for name in names:
        cluster.ensure_index(name)
    yield names
    for name in names:
        cluster.delete_index(name)


@pytest.fixture(scope="module")
def products_index(indices: tuple[str, str]) -> str:
    return indices[0]


@pytest.fixture(scope="module")
def looks_index(indices: tuple[str, str]) -> str:
    return indices[1]


@pytest.fixture(scope="module")
def catalog(cluster: Backend, products_index: str, looks_index: str) -> dict[str, Product]:
    """The sample without its bags, indexed, plus the sample looks ingested."""
    products = [p for p in sample_products() if look_slot(p) != "bag"]
    index_products(cluster, products_index, products)
    looks = load_looks(SAMPLE / "looks.jsonl")
    report = ingest_looks(
        cluster, looks, products_index=products_index, looks_index=looks_index, refresh=True
    )
    assert report.indexed > 20
    return {p.id: p for p in products}


@pytest.fixture(scope="module")
def client(
    cluster: Backend,
    settings: Settings,
    products_index: str,
    looks_index: str,
    compat: CompatModel,
    catalog: dict[str, Product],
) -> Iterator[TestClient]:
    svc = LookService(
        cluster,
        products_index=products_index,
        looks_index=looks_index,
        model=compat,
        joint_loader=FakeJoint,
    )
    app = create_app(settings, backend=cluster, loaders={"looks_service": lambda: svc})
    with TestClient(app) as c:
        yield c


def _look_anchor(slot: str) -> tuple[str, list[str]]:
    """A sample look's anchor of ``slot`` and the look's other item ids."""
    for look in load_looks(SAMPLE / "looks.jsonl"):
        if look.items[0].slot == slot and all(it.slot != "bag" for it in look.items):
            return look.items[0].item_id, [it.item_id for it in look.items[1:]]
    raise AssertionError(f"no sample look anchored on a {slot}")


def test_complete_by_item_id(client: TestClient, catalog: dict[str, Product]) -> None:
    anchor, partners = _look_anchor("top")
    r = client.post("/complete-the-look", json={"item_id": anchor, "size": 4})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["item_id"] == anchor and body["query"]["slot"] == "top"
    assert body["model"] is True
    slots = body["slots"]
    assert set(slots) == {"bottom", "outerwear", "shoes", "bag", "accessory"}
    assert slots["bag"] == []  # no bag in this catalog: an empty list, not an error
    gender = catalog[anchor].gender
    returned = [it for items in slots.values() for it in items]
    assert returned
    for it in returned:
        assert it["id"] != anchor and it["id"] in catalog
        assert set(it) >= {"id", "title", "score", "reason", "slot"}
        assert it["reason"]["source"] in {"look", "model", "look+model"}
        assert catalog[it["id"]].gender in {gender, "Unisex"}
    for slot, items in slots.items():
        assert len(items) <= 4
        assert all(it["slot"] == slot for it in items)
        assert len({it["id"] for it in items}) == len(items)
    # the look that holds the anchor contributes its partners, with the look as the reason
    from_look = {it["id"]: it["reason"] for it in returned if "look_id" in it["reason"]}
    assert set(partners) & set(from_look)
    pid = next(iter(set(partners) & set(from_look)))
    assert from_look[pid]["look_id"] == f"sn-{anchor}"
    assert from_look[pid]["similar_item"] == anchor


def test_slots_sizes_and_filters(client: TestClient, catalog: dict[str, Product]) -> None:
    anchor, _ = _look_anchor("top")
    r = client.post(
        "/complete-the-look",
        json={
            "item_id": anchor,
            "slots": ["shoes", "bottom"],
            "size": 3,
            "size_per_slot": {"shoes": 1},
            "filters": {"max_price": 1500, "gender": ["Men", "Women", "Unisex"]},
        },
    )
    assert r.status_code == 200, r.text
    slots = r.json()["slots"]
    assert list(slots) == ["shoes", "bottom"]
    assert len(slots["shoes"]) <= 1 and len(slots["bottom"]) <= 3
    for items in slots.values():
        for it in items:
            assert it["price"] <= 1500
    assert r.json()["query"]["gender_implied_by_query"] is False


def test_complete_by_photo(client: TestClient) -> None:
    photo = next(iter(sorted((SAMPLE / "images").glob("*.jpg"))))
    r = client.post(
        "/complete-the-look",
        files={"file": ("q.jpg", photo.read_bytes(), "image/jpeg")},
        data={"slots": "bottom,shoes", "size": "2", "filters": '{"gender": "Men"}'},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["image"] is True and body["query"]["slot"] == "top"
    assert body["query"]["predicted"]["article_type"] == "Tshirts"
    assert set(body["slots"]) == {"bottom", "shoes"}
    assert all(len(v) <= 2 for v in body["slots"].values())
    assert any(body["slots"].values())


def test_photo_errors(client: TestClient) -> None:
    r = client.post("/complete-the-look", files={"file": ("q.jpg", b"not an image", "image/jpeg")})
    assert r.status_code == 422 and r.json()["code"] == "invalid_image"
    # a multipart body without the photo
    r = client.post("/complete-the-look", files={"slots": (None, "shoes")}, data={"size": "2"})
    assert r.status_code == 422 and "file" in r.json()["message"]
    # a PNG upload works like a JPEG
    buf = io.BytesIO()
    Image.new("RGB", (64, 64), (200, 30, 30)).save(buf, format="PNG")
    r = client.post(
        "/complete-the-look",
        files={"image": ("q.png", buf.getvalue(), "image/png")},
        data={"query_slot": "shoes", "slots": "top"},
    )
    assert r.status_code == 200 and r.json()["query"]["slot"] == "shoes"


def test_unknown_item_is_404(client: TestClient) -> None:
    r = client.post("/complete-the-look", json={"item_id": "no-such-item"})
    assert r.status_code == 404
    body = r.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == "not_found"
    assert body["details"]["item_id"] == "no-such-item"


@pytest.mark.parametrize(
    "payload",
    [
        {},
        {"item_id": "1", "base64": "xx"},
        {"item_id": "1", "size": 0},
        {"item_id": "1", "filters": {"colour": "red"}},
    ],
)
def test_invalid_requests(client: TestClient, payload: dict[str, Any]) -> None:
    r = client.post("/complete-the-look", json=payload)
    assert r.status_code == 422, r.text
    assert r.json()["code"] in {"invalid_request", "invalid_input"}


def test_unknown_slot_is_422(client: TestClient) -> None:
    anchor, _ = _look_anchor("top")
    r = client.post("/complete-the-look", json={"item_id": anchor, "slots": ["hat"]})
    assert r.status_code == 422 and "hat" in r.json()["message"]


def test_get_look(client: TestClient, catalog: dict[str, Product]) -> None:
    anchor, partners = _look_anchor("top")
    r = client.get(f"/looks/sn-{anchor}")
    assert r.status_code == 200, r.text
    look = r.json()
    assert look["look_id"] == f"sn-{anchor}" and look["item_ids"] == [anchor, *partners]
    first = look["items"][0]
    assert "embedding" not in first and first["title"] == catalog[anchor].title
    r = client.get("/looks/no-such-look")
    assert r.status_code == 404 and r.json()["code"] == "not_found"


def test_service_without_model_answers_from_looks(
    cluster: Backend, products_index: str, looks_index: str, catalog: dict[str, Product]
) -> None:
    anchor, partners = _look_anchor("top")
    svc = LookService(cluster, products_index=products_index, looks_index=looks_index)
    out = svc.complete(CompleteRequest(item_id=anchor))
    assert out["model"] is False
    ids = {it["id"] for items in out["slots"].values() for it in items}
    gender = catalog[anchor].gender
    assert {p for p in partners if catalog[p].gender in {gender, "Unisex"}} <= ids
    assert all(it["reason"]["source"] == "look" for v in out["slots"].values() for it in v)


def test_missing_looks_index_is_not_an_error(
    cluster: Backend, products_index: str, compat: CompatModel, catalog: dict[str, Product]
) -> None:
    anchor, _ = _look_anchor("top")
    svc = LookService(
        cluster,
        products_index=products_index,
        looks_index=f"{TEST_PREFIX}-looks-missing-{uuid.uuid4().hex[:8]}",
        model=compat,
    )
    out = svc.complete(CompleteRequest(item_id=anchor, slots=["shoes"]))
    assert out["slots"]["shoes"]
    assert all(it["reason"]["source"] == "model" for it in out["slots"]["shoes"])
