"""The OpenAPI document says what the validation enforces (no cluster needed)."""

from __future__ import annotations

import json
from typing import Any, get_args

import pytest
from fastapi.testclient import TestClient

from engine.api.app import create_app
from engine.api.routers.looks import SlotName
from engine.catalog.taxonomy import SLOTS
from engine.settings import Settings


@pytest.fixture(scope="module")
def doc() -> dict[str, Any]:
    with TestClient(create_app(Settings())) as client:
        res = client.get("/openapi.json")
    assert res.status_code == 200
    return res.json()


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        own = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return own + [r for v in node.values() for r in refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in refs(v)]
    return []


def resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_reference_resolves(doc: dict[str, Any]) -> None:
    found = refs(doc)
    assert found and all(r.startswith("#/components/") for r in found), found
    for r in found:
        resolve(doc, r)


def body(doc: dict[str, Any], path: str, media: str = "application/json") -> dict[str, Any]:
    schema: dict[str, Any] = doc["paths"][path]["post"]["requestBody"]["content"][media]["schema"]
    return schema


@pytest.mark.parametrize(
    ("path", "sources"),
    [
        ("/search/image", ["url", "base64", "item_id"]),
        ("/search/compose", ["url", "base64", "item_id"]),
        ("/complete-the-look", ["item_id", "base64"]),
    ],
)
def test_photo_routes_need_exactly_one_source(
    doc: dict[str, Any], path: str, sources: list[str]
) -> None:
    schema = body(doc, path)
    assert [b["required"] for b in schema["oneOf"]] == [[s] for s in sources]
    assert schema["additionalProperties"] is False
    form = body(doc, path, "multipart/form-data")
    assert form["required"] == ["file"] and form["properties"]["filters"]["type"] == "object"
    assert "$defs" not in json.dumps(schema) + json.dumps(form)


def test_error_responses_document_the_error_body(doc: dict[str, Any]) -> None:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if path == "/health":
                continue
            for status in ("4XX", "5XX", "422"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path)
    error = doc["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"code", "message", "details"}


def test_admin_operations_declare_the_key(doc: dict[str, Any]) -> None:
    scheme = doc["components"]["securitySchemes"]["APIKeyHeader"]
    assert scheme == {**scheme, "type": "apiKey", "in": "header", "name": "X-API-Key"}
    admin = [
        op for path, ops in doc["paths"].items() if path.startswith("/admin") for op in ops.values()
    ]
    # weights: get, put, history, rollback; and the preview of candidate weights
    assert len(admin) == 5
    assert all(op["security"] == [{"APIKeyHeader": []}] for op in admin)


def test_slot_names_are_the_taxonomy_slots() -> None:
    assert get_args(get_args(SlotName)[0]) == SLOTS
