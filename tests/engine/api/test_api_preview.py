"""``POST /admin/preview`` guards: the admin key, one query kind, bounded candidate knobs, and
the OpenAPI schema naming the request. (Rankings on the real node: the browser tests.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from engine.api.app import create_app
from engine.settings import ApiSettings, Settings
from tests.search_fakes import FakeBackend, FakeModel

KEY = "preview-key"


@pytest.fixture
def client() -> Iterator[TestClient]:
    settings = Settings(api=ApiSettings(admin_api_key=SecretStr(KEY)))
    app = create_app(settings, backend=FakeBackend(), loaders={"joint": FakeModel})  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


@pytest.mark.parametrize("headers", [{}, {"X-API-Key": "wrong"}])
def test_preview_needs_the_admin_key(client: TestClient, headers: dict[str, str]) -> None:
    r = client.post("/admin/preview", json={"query": "x"}, headers=headers)
    assert r.status_code == 401 and r.json()["code"] == "unauthorized"


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"query": "x", "item_id": "1"},
        {"query": "   "},
        {"query": "x", "candidate": {"hybrid_depth": 5000}},
        {"query": "x", "candidate": {"hybrid": {"bm25": 0, "vector": 0}}},
        {"query": "x", "candidate": {"rerank": {"ltr_weight": 2}}},
        {"query": "x", "size": 51},
    ],
)
def test_invalid_previews_are_422(client: TestClient, body: dict) -> None:
    r = client.post("/admin/preview", json=body, headers={"X-API-Key": KEY})
    assert r.status_code == 422, r.text
    assert set(r.json()) == {"code", "message", "details"}


def test_openapi_documents_the_preview(client: TestClient) -> None:
    op = client.get("/openapi.json").json()["paths"]["/admin/preview"]["post"]
    ref = op["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert ref.endswith("/PreviewRequest") and "401" in op["responses"]
    assert "/" not in client.get("/openapi.json").json()["paths"]  # pages stay out of the API
