"""Admin API: authentication, validation, and weights applied to the stored pipeline (issue 8)."""

from __future__ import annotations

import json
import logging
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from engine.api.app import create_app
from engine.api.audit import key_id
from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.settings import Settings
from engine.tuning.weights import pipeline_weights
from tests.conftest import BOTH_ENGINES, TEST_PREFIX

CLUSTER_ENGINES = BOTH_ENGINES

KEY = "s3cret-admin-key"
GOOD = {"X-API-Key": KEY}


def app_settings(base: Settings, key: str | None, prefix: str | None = None) -> Settings:
    api = base.api.model_copy(update={"admin_api_key": SecretStr(key) if key else None})
    cluster = base.cluster.model_copy(update={"index_prefix": prefix or base.cluster.index_prefix})
    return base.model_copy(update={"api": api, "cluster": cluster})


@pytest.fixture
def offline_client(settings: Settings) -> Iterator[TestClient]:
    """No cluster needed: authentication and validation answer before any cluster I/O."""
    with TestClient(create_app(app_settings(settings, KEY))) as client:
        yield client


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/admin/weights"),
        ("put", "/admin/weights"),
        ("get", "/admin/weights/history"),
        ("post", "/admin/weights/rollback"),
    ],
)
def test_every_route_needs_the_key(offline_client: TestClient, method: str, path: str) -> None:
    body = {"hybrid": {"bm25": 0.3, "vector": 0.7}}
    for headers in ({}, {"X-API-Key": "wrong"}, {"X-API-Key": ""}):
        res = offline_client.request(method, path, headers=headers, json=body)
        assert res.status_code == 401, res.text
        assert res.json()["code"] == "unauthorized"


def test_unauthenticated_invalid_body_is_401_not_422(offline_client: TestClient) -> None:
    res = offline_client.put("/admin/weights", json={"hybrid": {"bm25": 2}})
    assert res.status_code == 401


@pytest.mark.parametrize(
    "body",
    [
        {"hybrid": {"bm25": 0.5, "vector": 0.6}},
        {"hybrid": {"bm25": -0.5, "vector": 1.5}},
        {"hybrid": {"bm25": "0.3", "vector": 0.7}},
        {"hybrid": {"bm25": 0.3}},
        {"rerank": {"ltr_weight": 1.2}},
        {"rerank": {"top_n": 0}},
        {"comment": "nothing to change"},
        {"hybrid": {"bm25": 0.3, "vector": 0.7}, "extra": 1},
    ],
)
def test_invalid_values_are_422(offline_client: TestClient, body: dict) -> None:
    res = offline_client.put("/admin/weights", json=body, headers=GOOD)
    assert res.status_code == 422, res.text
    err = res.json()
    assert set(err) == {"code", "message", "details"} and err["code"] == "invalid_request"


def test_nan_is_rejected(offline_client: TestClient) -> None:
    raw = '{"hybrid": {"bm25": NaN, "vector": 0.5}}'
    res = offline_client.put(
        "/admin/weights", content=raw, headers={**GOOD, "content-type": "application/json"}
    )
    assert res.status_code == 422


def test_no_configured_key_disables_the_admin_api(settings: Settings) -> None:
    with TestClient(create_app(app_settings(settings, None))) as client:
        res = client.get("/admin/weights", headers=GOOD)
    assert res.status_code == 503
    assert res.json()["code"] == "admin_disabled"
    assert "OUTFIT_API__ADMIN_API_KEY" in res.json()["message"]


@pytest.fixture
def live_client(settings: Settings, cluster: Backend) -> Iterator[tuple[TestClient, Backend, str]]:
    prefix = f"{TEST_PREFIX}-adm{uuid.uuid4().hex[:8]}"
    apply(cluster, [o for o in desired_objects(prefix) if o.kind == "search_pipeline"])
    s = app_settings(settings, KEY, prefix)
    with TestClient(create_app(s, backend=cluster)) as client:
        yield client, cluster, s.cluster.hybrid_pipeline
    cluster.delete_index(f"{prefix}-settings")
    cluster.delete_search_pipeline(s.cluster.hybrid_pipeline)


def stored(cluster: Backend, pipeline: str) -> list[float]:
    body = cluster.get_search_pipeline(pipeline)
    assert body is not None
    return pipeline_weights(body).as_list()


@pytest.mark.opensearch
def test_weights_through_the_api_reach_the_stored_pipeline(
    live_client: tuple[TestClient, Backend, str],
) -> None:
    client, cluster, pipeline = live_client
    res = client.get("/admin/weights", headers=GOOD)
    assert res.status_code == 200, res.text
    assert res.json()["weights"] == {"bm25": 0.4, "vector": 0.6}

    res = client.put(
        "/admin/weights",
        json={"hybrid": {"bm25": 0.25, "vector": 0.75}, "comment": "more visual"},
        headers=GOOD,
    )
    assert res.status_code == 200, res.text
    assert res.json()["version"] == 2 and res.json()["actor"] == key_id(KEY)
    assert stored(cluster, pipeline) == [0.25, 0.75]  # GET the pipeline back from the node

    res = client.put("/admin/weights", json={"rerank": {"ltr_weight": 0.3}}, headers=GOOD)
    assert res.status_code == 200 and res.json()["blend"]["ltr_weight"] == 0.3
    assert stored(cluster, pipeline) == [0.25, 0.75]

    bad = client.put("/admin/weights", json={"hybrid": {"bm25": 0.9, "vector": 0.9}}, headers=GOOD)
    assert bad.status_code == 422
    assert stored(cluster, pipeline) == [0.25, 0.75]  # a rejected change changes nothing

    hist = client.get("/admin/weights/history", headers=GOOD).json()["versions"]
    assert [v["version"] for v in hist] == [3, 2, 1]

    res = client.post("/admin/weights/rollback", json={"version": 1}, headers=GOOD)
    assert res.status_code == 200, res.text
    assert stored(cluster, pipeline) == [0.4, 0.6]
    res = client.post("/admin/weights/rollback", headers=GOOD)  # undo the rollback
    assert res.status_code == 200 and res.json()["rolled_back_to"] == 3
    assert stored(cluster, pipeline) == [0.25, 0.75]
    view = client.get("/admin/weights", headers=GOOD).json()
    assert view["version"] == 5 and view["blend"]["ltr_weight"] == 0.3 and view["in_sync"]

    res = client.post("/admin/weights/rollback", json={"version": 42}, headers=GOOD)
    assert res.status_code == 404 and res.json()["code"] == "not_found"


def audit_lines(caplog: pytest.LogCaptureFixture) -> list[dict]:
    return [r.audit for r in caplog.records if r.name == "outfit.audit"]


@pytest.mark.opensearch
def test_every_weight_change_is_one_audit_line_without_the_key(
    live_client: tuple[TestClient, Backend, str], caplog: pytest.LogCaptureFixture
) -> None:
    client, _, _ = live_client
    caplog.set_level(logging.INFO, logger="outfit.audit")
    res = client.put(
        "/admin/weights",
        json={"hybrid": {"bm25": 0.3, "vector": 0.7}, "comment": "more text\nforged line"},
        headers=GOOD,
    )
    assert res.status_code == 200, res.text
    (line,) = audit_lines(caplog)
    assert line["event"] == "weights.update" and line["actor"] == key_id(KEY)
    assert line["version"] == 2 and line["comment"] == "more text\nforged line"
    assert line["old"]["weights"] == {"bm25": 0.4, "vector": 0.6} and line["old"]["version"] == 0
    assert line["new"]["weights"] == {"bm25": 0.3, "vector": 0.7}
    assert line["old"]["blend"] == line["new"]["blend"]

    res = client.put("/admin/weights", json={"rerank": {"ltr_weight": 0.2}}, headers=GOOD)
    assert res.status_code == 200, res.text
    res = client.post("/admin/weights/rollback", json={"version": 1}, headers=GOOD)
    assert res.status_code == 200, res.text
    lines = audit_lines(caplog)
    assert [ln["event"] for ln in lines] == ["weights.update"] * 2 + ["weights.rollback"]
    assert lines[1]["old"]["blend"]["ltr_weight"] != 0.2 == lines[1]["new"]["blend"]["ltr_weight"]
    back = lines[2]
    assert back["version"] == 4 and back["rolled_back_to"] == 1
    assert back["old"]["weights"] == {"bm25": 0.3, "vector": 0.7}
    assert back["new"]["weights"] == {"bm25": 0.4, "vector": 0.6}

    # refused, rejected and read-only requests change nothing and are not audited
    client.put("/admin/weights", json={"rerank": {"ltr_weight": 0.1}}, headers={"X-API-Key": "x"})
    client.put("/admin/weights", json={"hybrid": {"bm25": 0.9, "vector": 0.9}}, headers=GOOD)
    client.get("/admin/weights/history", headers=GOOD)
    assert len(audit_lines(caplog)) == 3

    # one line each (the comment's newline is escaped), JSON, and never the key
    audit_records = [r for r in caplog.records if r.name == "outfit.audit"]
    for record in audit_records:
        text = record.getMessage()
        assert "\n" not in text and json.loads(text) == record.audit
    everything = caplog.text + "".join(r.getMessage() for r in caplog.records)
    assert KEY not in everything
    assert key_id(KEY) in everything


def test_key_id_is_short_stable_and_not_the_key() -> None:
    assert key_id(KEY) == key_id(KEY) != key_id(KEY + "x")
    assert key_id(KEY).startswith("key-") and len(key_id(KEY)) == 12
    assert KEY not in key_id(KEY)


def test_the_key_is_compared_in_constant_time(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Right and wrong keys both go through ``compare_digest`` (no early-exit ``==``)."""
    import hmac

    from engine.api.routers import admin
    from engine.errors import Unauthorized

    calls: list[tuple[bytes, bytes]] = []

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(admin.secrets, "compare_digest", spy)
    s = app_settings(settings, KEY)
    assert admin.require_admin(s, KEY) == key_id(KEY)
    with pytest.raises(Unauthorized):
        admin.require_admin(s, KEY[:-1] + "x")
    assert calls == [(KEY.encode(), KEY.encode()), ((KEY[:-1] + "x").encode(), KEY.encode())]
