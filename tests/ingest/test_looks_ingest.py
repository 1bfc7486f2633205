"""Look ingestion against the real node: unknown ids reported, bad lines never fail the file.

Also home of the small helpers the looks API tests share: product documents of the sample
catalog with deterministic, type-structured fake vectors (no model needed)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest

from engine.backend import Backend
from engine.catalog import Product, load_catalog
from engine.documents import product_to_document
from ingest.looks import ingest_looks_lines
from tests.conftest import SAMPLE

pytestmark = pytest.mark.opensearch


def hashed_unit(*parts: str, dim: int = 256) -> np.ndarray:
    seed = int(hashlib.sha1("|".join(parts).encode()).hexdigest()[:8], 16)
    v = np.random.default_rng(seed).standard_normal(dim)
    return (v / np.linalg.norm(v)).astype(np.float32)


def fake_vector(p: Product) -> np.ndarray:
    """Items of one type and colour are close; gender and the id add smaller components."""
    v = (
        hashed_unit("type", p.article_type or "")
        + 0.6 * hashed_unit("colour", p.base_colour or "")
        + 0.4 * hashed_unit("gender", p.gender or "")
        + 0.3 * hashed_unit("id", p.id)
    )
    return (v / np.linalg.norm(v)).astype(np.float32)


def sample_products() -> list[Product]:
    path = SAMPLE / "catalog.jsonl"
    if not path.is_file():
        pytest.skip("sample/catalog.jsonl is missing")
    return load_catalog(path)


def index_products(backend: Backend, index: str, products: Sequence[Product]) -> None:
    docs = [
        product_to_document(p, text_embedding=fake_vector(p), image_embeddings=()) for p in products
    ]
    ok, errors = backend.bulk(
        [{"_index": index, "_id": d["id"], "_source": d} for d in docs], refresh=True
    )
    assert not errors and ok == len(docs)


def test_ingest_reports_unknown_ids_and_bad_lines(
    cluster: Backend, products_index: str, looks_index: str
) -> None:
    products = sample_products()[:30]
    index_products(cluster, products_index, products)
    a, b, c = products[0].id, products[1].id, products[2].id
    lines = [
        json.dumps(
            {
                "look_id": "ok",
                "items": [{"item_id": a}, {"item_id": b, "slot": "shoes"}],
                "gender": "Men",
                "source": "test",
            }
        ),
        json.dumps(
            {"look_id": "partial", "items": [{"item_id": a}, {"item_id": c}, {"item_id": "nope-1"}]}
        ),
        json.dumps({"look_id": "too-few", "items": [{"item_id": a}, {"item_id": "nope-2"}]}),
        "{broken json",
        json.dumps({"look_id": "bad-slot", "items": [{"item_id": a, "slot": "hat"}]}),
        json.dumps({"look_id": "ok", "items": [{"item_id": a}, {"item_id": b}]}),
    ]
    report = ingest_looks_lines(
        cluster, lines, products_index=products_index, looks_index=looks_index, refresh=True
    )
    out = report.to_json()
    assert out["lines"] == 6 and out["indexed"] == 2 and out["skipped"] == 4
    assert out["unknown_ids"] == {"partial": ["nope-1"], "too-few": ["nope-2"]}
    assert [r["line"] for r in out["invalid"]] == [4, 5]
    assert {s["look_id"] for s in out["skipped_looks"]} == {"too-few", "ok"}
    assert cluster.count(looks_index) == 2

    doc: dict[str, Any] = cluster.get(looks_index, "partial")
    assert doc["item_ids"] == [a, c]
    assert all(len(it["embedding"]) == 256 for it in doc["items"])
    ok = cluster.get(looks_index, "ok")
    assert ok["items"][1]["slot"] == "shoes"  # the look's slot wins over the product's
    assert ok["gender"] == "Men" and ok["source"] == "test"


def test_ingest_empty_input(cluster: Backend, products_index: str, looks_index: str) -> None:
    report = ingest_looks_lines(cluster, [], products_index=products_index, looks_index=looks_index)
    assert report.to_json()["indexed"] == 0
