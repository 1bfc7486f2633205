"""The secured node (``python -m engine.cluster up --secure``): TLS, basic auth, roles, and no
secret in logs or error bodies (issue 17).

A module fixture starts the secured node (HTTPS 9221, transport 9321, its own home) and stops it
afterwards when it started it. Every test talks to it the way a user would: a ``Settings`` with
``cluster.url=https://127.0.0.1:9221``, ``ca_certs``, a user and a password. All logging, at
DEBUG, is captured for the whole module (a handler on the root logger, like ``caplog`` but for
every test); the last test greps it, the API error bodies and the raised errors for every
password, every basic-auth token and every private key.
"""

from __future__ import annotations

import base64
import io
import json
import logging
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from engine.api.app import create_app
from engine.backend import Backend
from engine.cluster.secure import ADMIN_USER, API_USER, INGEST_USER, USERS, SecureNode
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.errors import ClusterAuthError, ClusterForbidden, EngineError
from engine.hybrid import HybridWeights
from engine.settings import ApiSettings, ClusterSettings, ModelSettings, Settings
from engine.tuning.weights import TuningStore
from tests.conftest import SAMPLE

pytestmark = [pytest.mark.secure, pytest.mark.slow]

PREFIX = "outfitsec"
WRONG_PASSWORD = "not-the-password-Zx81"
ADMIN_API_KEY = "secure-test-admin-key-7f3a"
N_PRODUCTS = 16


class Capture(logging.Handler):
    """Every log record of the module, formatted with its traceback."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.lines: list[str] = []
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


@pytest.fixture(scope="module")
def logs() -> Iterator[Capture]:
    handler = Capture()
    root = logging.getLogger()
    saved = {name: logging.getLogger(name).level for name in ("", "opensearch", "urllib3")}
    root.addHandler(handler)
    for name in saved:
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    for name, level in saved.items():
        logging.getLogger(name).setLevel(level)


@pytest.fixture(scope="module")
def leaked() -> list[str]:
    """Texts that must be checked for secrets (error bodies, exception messages)."""
    return []


@pytest.fixture(scope="module")
def node(logs: Capture) -> Iterator[SecureNode]:
    node = SecureNode(Settings().secure_node, index_prefix=PREFIX)
    started_here = node.read_pid() is None
    t0 = time.monotonic()
    node.up()
    logging.getLogger(__name__).info("secured node up in %.1fs", time.monotonic() - t0)
    yield node
    if started_here:
        assert node.down()
        assert node.read_pid() is None


def settings_for(node: SecureNode, user: str, password: SecretStr | None = None) -> Settings:
    """What a user sets: OUTFIT_CLUSTER__URL=https://..., CA_CERTS, USERNAME, PASSWORD."""
    cluster = ClusterSettings(
        url="https://127.0.0.1:9221",
        ca_certs=node.pki.ca_cert,
        username=user,
        password=password or node.password(user),
        index_prefix=PREFIX,
    )
    return Settings(
        cluster=cluster,
        models=ModelSettings(device="cpu", num_threads=2),
        api=ApiSettings(admin_api_key=SecretStr(ADMIN_API_KEY)),
    )


@pytest.fixture(scope="module")
def admin(node: SecureNode) -> Backend:
    return Backend.from_settings(settings_for(node, ADMIN_USER))


@pytest.fixture(scope="module")
def writer(node: SecureNode) -> Backend:
    return Backend.from_settings(settings_for(node, INGEST_USER))


@pytest.fixture(scope="module")
def reader(node: SecureNode) -> Backend:
    return Backend.from_settings(settings_for(node, API_USER))


@pytest.fixture(scope="module")
def configured(admin: Backend) -> Iterator[Backend]:
    """Config apply as the admin user (index templates, pipeline, stored templates)."""
    for index in (f"{PREFIX}-products", f"{PREFIX}-settings"):
        admin.delete_index(index)  # left over by an interrupted run
    changes = apply(admin, desired_objects(PREFIX, replicas=0))
    assert changes and all(c.action in ("created", "updated", "unchanged") for c in changes)
    assert {c.action for c in apply(admin, desired_objects(PREFIX, replicas=0))} == {"unchanged"}
    yield admin
    for index in (f"{PREFIX}-products", f"{PREFIX}-settings"):
        admin.delete_index(index)


@pytest.fixture(scope="module")
def model() -> Any:
    from engine.models.joint import JointModel

    return JointModel.load(None, device="cpu", num_threads=2)


@pytest.fixture(scope="module")
def ingested(
    node: SecureNode,
    configured: Backend,
    writer: Backend,
    model: Any,
    tmp_path_factory: pytest.TempPathFactory,
) -> list[dict[str, Any]]:
    """A few sample products ingested as the ingest user."""
    from ingest import ingest_products
    from ingest.encode import JointEncoder

    tmp = tmp_path_factory.mktemp("secure-ingest")
    rows = [json.loads(x) for x in (SAMPLE / "catalog.jsonl").read_text().splitlines() if x]
    rows = [r for r in rows if (SAMPLE / "images" / f"{r['id']}.jpg").is_file()][:N_PRODUCTS]
    catalog = tmp / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in rows))
    report = ingest_products(
        settings_for(node, INGEST_USER),
        catalog,
        images_dir=SAMPLE / "images",
        backend=writer,
        encoder=JointEncoder(model, "secure-test"),
        state_dir=tmp / "state",
        progress=False,
    )
    assert writer.count(f"{PREFIX}-products") == len(rows), report
    return rows


def _get(url: str, node: SecureNode, auth: tuple[str, str] | None = None) -> int:
    ctx = ssl.create_default_context(cafile=str(node.pki.ca_cert))
    headers = {}
    if auth is not None:
        headers["Authorization"] = "Basic " + base64.b64encode(":".join(auth).encode()).decode()
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=10, context=ctx
        ) as resp:
            return int(resp.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# --------------------------------------------------------------------------- the node


def test_node_runs_the_security_plugin_over_tls(node: SecureNode) -> None:
    status = node.status()
    assert status.url == "https://127.0.0.1:9221"
    assert status.health in ("green", "yellow")
    assert "opensearch-security" in status.plugins
    # plain HTTP on the TLS port is not served
    with pytest.raises(OSError):
        urllib.request.urlopen("http://127.0.0.1:9221/", timeout=5)  # noqa: S310


def test_secrets_are_owner_only_and_passwords_not_default(node: SecureNode) -> None:
    assert node.secrets_dir.stat().st_mode & 0o777 == 0o700
    for path in [node.credentials_file, node.pki.admin_key, node.pki.ca_key] + [
        node.env_file(u) for u in USERS
    ]:
        assert path.stat().st_mode & 0o777 == 0o600, path
    passwords = {node.password(u).get_secret_value() for u in USERS}
    assert len(passwords) == len(USERS) and "admin" not in passwords
    assert all(len(p) >= 24 for p in passwords)


def test_request_without_credentials_is_refused(node: SecureNode) -> None:
    assert _get("https://127.0.0.1:9221/", node) == 401
    assert _get("https://127.0.0.1:9221/_cat/indices", node, ("admin", "admin")) == 401
    assert (
        _get(
            "https://127.0.0.1:9221/",
            node,
            (ADMIN_USER, node.password(ADMIN_USER).get_secret_value()),
        )
        == 200
    )
    anonymous = Settings(
        cluster=ClusterSettings(url="https://127.0.0.1:9221", ca_certs=node.pki.ca_cert)
    )
    with pytest.raises(ClusterAuthError):
        Backend.from_settings(anonymous).info()


def test_wrong_password_is_a_clear_domain_error(
    node: SecureNode, leaked: list[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    backend = Backend.from_settings(settings_for(node, API_USER, SecretStr(WRONG_PASSWORD)))
    t0 = time.monotonic()
    with pytest.raises(ClusterAuthError) as info:
        backend.wait_for_health(timeout_s=60)
    assert time.monotonic() - t0 < 10, "credentials are not retried for the whole timeout"
    err = info.value
    assert err.code == "cluster_auth_failed" and err.details["status"] == 401
    assert "refused the credentials" in err.message and "OUTFIT_CLUSTER__PASSWORD" in err.message
    leaked.extend([err.message, repr(err.details), str(info.getrepr())])
    text = caplog.text + err.message + repr(err.details)
    assert WRONG_PASSWORD not in text
    assert node.password(API_USER).get_secret_value() not in text


def test_verify_against_the_wrong_ca_fails(node: SecureNode, tmp_path: Path) -> None:
    from engine.cluster.pki import Pki

    other = Pki.at(tmp_path, tmp_path / "private")
    other.generate()
    s = settings_for(node, API_USER)
    s = s.model_copy(update={"cluster": s.cluster.model_copy(update={"ca_certs": other.ca_cert})})
    with pytest.raises(EngineError, match="unreachable"):
        Backend.from_settings(s).info()


# --------------------------------------------------------------------------- the flow


def test_ingest_as_the_ingest_user(ingested: list[dict[str, Any]], reader: Backend) -> None:
    ids = [r["id"] for r in ingested]
    docs = reader.mget(f"{PREFIX}-products", ids)
    assert len(docs) == len(ids)


def test_api_user_reads_but_cannot_write(
    ingested: list[dict[str, Any]], reader: Backend, leaked: list[str]
) -> None:
    index = f"{PREFIX}-products"
    assert reader.count(index) == len(ingested)
    with pytest.raises(ClusterForbidden) as info:
        reader.index_doc(index, "intruder", {"title": "nope"})
    assert info.value.details["status"] == 403
    with pytest.raises(ClusterForbidden):
        reader.bulk([{"_index": index, "_id": "intruder", "_source": {"title": "nope"}}])
    with pytest.raises(ClusterForbidden):
        reader.create_index(f"{PREFIX}-looks-intruder")
    with pytest.raises(ClusterForbidden):
        reader.put_search_pipeline(f"{PREFIX}-hybrid", {"description": "nope"})
    with pytest.raises(ClusterForbidden):  # outside the prefix: not even reads
        reader.count("other-products")
    leaked.append(info.value.message)
    assert reader.count(index) == len(ingested)


def test_tuning_put_and_rollback_as_the_ingest_user(
    configured: Backend, writer: Backend, reader: Backend, node: SecureNode
) -> None:
    cluster = settings_for(node, INGEST_USER).cluster
    store = TuningStore(writer, cluster)
    before = store.current().weights
    wanted = HybridWeights(bm25=0.2, vector=0.8)
    v = store.update(weights=wanted, actor="secure-test")
    assert store.current().weights.close_to(wanted)
    # the API user sees the change (reads the pipeline and the settings index)
    assert TuningStore(reader, cluster).current().version == v.version
    store.rollback(actor="secure-test")
    assert store.current().weights.close_to(before)
    with pytest.raises(ClusterForbidden):
        TuningStore(reader, cluster).update(weights=wanted, actor="api")


@pytest.fixture(scope="module")
def api(node: SecureNode, ingested: list[dict[str, Any]], model: Any) -> Iterator[TestClient]:
    settings = settings_for(node, API_USER)
    app = create_app(
        settings, backend=Backend.from_settings(settings), loaders={"joint": lambda: model}
    )
    with TestClient(app) as client:
        yield client


def test_api_searches_as_the_restricted_user(
    api: TestClient, ingested: list[dict[str, Any]]
) -> None:
    ids = {r["id"] for r in ingested}
    r = api.get("/health")
    assert r.status_code == 200 and r.json()["cluster"]["status"] in ("green", "yellow"), r.text
    r = api.post("/search/text", json={"query": ingested[0]["title"], "size": 5})
    assert r.status_code == 200, r.text
    hits = [h["id"] for h in r.json()["hits"]]
    assert hits and set(hits) <= ids and ingested[0]["id"] in hits
    item = ingested[1]["id"]
    photo = (SAMPLE / "images" / f"{item}.jpg").read_bytes()
    r = api.post(
        "/search/image",
        files={"file": (f"{item}.jpg", io.BytesIO(photo), "image/jpeg")},
        data={"size": "5"},
    )
    assert r.status_code == 200, r.text
    assert item in [h["id"] for h in r.json()["hits"]][:3]


def test_api_write_as_the_restricted_user_is_a_clear_error(
    api: TestClient, leaked: list[str]
) -> None:
    r = api.put(
        "/admin/weights",
        json={"hybrid": {"bm25": 0.4, "vector": 0.6}},
        headers={"X-API-Key": ADMIN_API_KEY},
    )
    assert r.status_code == 502, r.text
    assert r.json()["code"] == "cluster_forbidden"
    leaked.append(r.text)


def test_api_with_a_wrong_password_answers_a_clear_error(
    node: SecureNode, model: Any, leaked: list[str]
) -> None:
    settings = settings_for(node, API_USER, SecretStr(WRONG_PASSWORD))
    app = create_app(
        settings, backend=Backend.from_settings(settings), loaders={"joint": lambda: model}
    )
    with TestClient(app) as client:
        r = client.post("/search/text", json={"query": "shirt", "size": 3})
        assert r.status_code == 502, r.text
        body = r.json()
        assert (
            body["code"] == "cluster_auth_failed" and "refused the credentials" in body["message"]
        )
        health = client.get("/health")
        assert health.json()["cluster"]["status"] == "unreachable"
        leaked.extend([r.text, health.text])


# --------------------------------------------------------------------------- no secret anywhere


def test_no_password_or_key_in_logs_or_error_bodies(
    node: SecureNode, logs: Capture, leaked: list[str]
) -> None:
    text = "\n".join(logs.lines + leaked)
    # the flow above ran and was captured (this test is last in the module)
    assert "cluster_auth_failed" in text or "refused the credentials" in text
    assert any("9221" in line for line in logs.lines)
    assert len(leaked) >= 5, leaked
    secrets = {WRONG_PASSWORD, ADMIN_API_KEY}
    for user in USERS:
        password = node.password(user).get_secret_value()
        secrets |= {password, base64.b64encode(f"{user}:{password}".encode()).decode()}
    secrets.add(base64.b64encode(f"{API_USER}:{WRONG_PASSWORD}".encode()).decode())
    for key in (node.pki.ca_key, node.pki.node_key, node.pki.admin_key):
        body = key.read_text().splitlines()[1:-1]
        secrets |= {line for line in body if len(line) > 40}
    found = sorted(s[:6] + "..." for s in secrets if s in text)
    assert not found, f"secrets in logs or error bodies: {found}"
