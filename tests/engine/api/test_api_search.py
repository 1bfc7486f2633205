"""The search router: request models, uploads, size limits and the error body shape.

Runs the real app and service against a recording backend and a fake model (no cluster)."""

from __future__ import annotations

import base64
import io
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.app import create_app
from engine.ltr.features import Candidate
from engine.ltr.rerank import RerankBlend, load_model
from engine.settings import ApiSettings, Settings
from tests.search_fakes import FakeBackend, FakeModel, hit, response, unit

MAX_BYTES = 50_000
MAX_PIXELS = 1_000_000


def png(size: tuple[int, int] = (40, 40), colour: tuple[int, int, int] = (10, 20, 200)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="PNG")
    return buf.getvalue()


@pytest.fixture
def backend() -> FakeBackend:
    be = FakeBackend()
    items = [hit(str(i), 0.9 - i / 100, title=f"item {i}", article_type="Shirts") for i in range(5)]
    be.on_search = lambda body, kw: response(*items[: body["size"]])
    be.docs["7"] = {"image_embedding": unit("7").tolist(), "article_type": "Shirts"}
    return be


@pytest.fixture
def client(backend: FakeBackend) -> Iterator[TestClient]:
    settings = Settings(api=ApiSettings(max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS))
    app = create_app(settings, backend=backend, loaders={"joint": FakeModel})  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


def assert_error(resp: Any, status: int, code: str, words: str = "") -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "details"}
    assert body["code"] == code
    assert words.lower() in body["message"].lower()
    return body


# --------------------------------------------------------------------------- text


class _LiveBlend:
    """Stands in for the tuning store: the blend a merchandiser last saved."""

    def __init__(self, blend: RerankBlend) -> None:
        self.value = blend

    def blend(self) -> RerankBlend:
        return self.value


def test_the_live_blend_reorders_results(client: TestClient, backend: FakeBackend) -> None:
    # retrieval order 0..4 (close scores); item 4 is rated 5 and half price
    items = [
        hit(str(i), 0.9 - i / 1000, title=f"item {i}", rating=1.0, price=3000) for i in range(4)
    ]
    items.append(hit("4", 0.896, title="item 4", rating=5.0, price=3000, discounted_price=1500))
    backend.on_search = lambda body, kw: response(*items[: body["size"]])
    live = _LiveBlend(RerankBlend(enabled=False))
    client.app.state.outfit.put("tuning", live)  # type: ignore[attr-defined]

    def ids() -> list[str]:
        r = client.post("/search/text", json={"query": "x", "size": 5})
        assert r.status_code == 200, r.text
        return [h["id"] for h in r.json()["hits"]]

    assert ids() == ["0", "1", "2", "3", "4"]
    live.value = RerankBlend(ltr_weight=1.0, top_n=5)  # saved by a merchandiser: next query
    scores = load_model().score_candidates([Candidate.from_hit(h) for h in items], 0.0)
    expected = [items[i]["_id"] for i in sorted(range(5), key=lambda i: (-scores[i], i))]
    assert expected != ["0", "1", "2", "3", "4"]
    assert ids() == expected


def test_text_search_ok(client: TestClient, backend: FakeBackend) -> None:
    r = client.post(
        "/search/text",
        json={"query": "red dresses", "size": 3, "filters": {"gender": "Women", "max_price": 900}},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    # never tuned: the default blend (LTR weight 0.5 over the top 60) is live
    assert body["type"] == "text" and body["strategy"] == "hybrid+ltr"
    assert len(body["hits"]) == 3
    sent = backend.searches()[0]
    assert sent["size"] == 60 and "rating" in sent["_source"]["includes"]
    bool_q = sent["query"]["hybrid"]["queries"][0]["bool"]
    assert {"term": {"gender": "Women"}} in bool_q["filter"]
    assert {"range": {"price": {"lte": 900.0}}} in bool_q["filter"]


@pytest.mark.parametrize(
    "payload",
    [
        {"query": ""},
        {"query": "   "},
        {"query": "x", "size": 0},
        {"query": "x", "size": 101},
        {"query": "x", "mode": "magic"},
        {"query": "x", "weights": {"bm25": 0, "vector": 0}},
        {"query": "x", "filters": {"min_price": 10, "max_price": 5}},
        {"query": "x", "filters": {"sparkle": True}},
        {"query": "x" * 600},
    ],
)
def test_text_search_validation(client: TestClient, payload: dict[str, Any]) -> None:
    body = assert_error(client.post("/search/text", json=payload), 422, "invalid_request")
    assert body["details"]["errors"]


# --------------------------------------------------------------------------- image uploads


def test_image_upload_ok(client: TestClient) -> None:
    r = client.post(
        "/search/image",
        files={"file": ("q.png", png(), "image/png")},
        data={"size": "2", "explain": "true", "filters": json.dumps({"gender": ["Men"]})},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["type"] == "image" and len(body["hits"]) == 2
    assert body["category"]["source"] == "predicted"
    assert body["hits"][0]["explain"]["vector"] == pytest.approx(0.8)


def test_upload_not_an_image(client: TestClient) -> None:
    r = client.post("/search/image", files={"file": ("q.txt", b"hello world", "text/plain")})
    assert_error(r, 422, "invalid_image", "not a recognised image")


def test_upload_empty(client: TestClient) -> None:
    r = client.post("/search/image", files={"file": ("q.png", b"", "image/png")})
    assert_error(r, 422, "invalid_image", "empty")


def test_upload_truncated(client: TestClient) -> None:
    data = png((64, 64))
    r = client.post("/search/image", files={"file": ("q.png", data[: len(data) // 2], "image/png")})
    assert_error(r, 422, "invalid_image")


def test_upload_too_many_bytes(client: TestClient) -> None:
    big = b"\xff\xd8" + b"\0" * (MAX_BYTES + 10)
    r = client.post("/search/image", files={"file": ("q.jpg", big, "image/jpeg")})
    body = assert_error(r, 413, "payload_too_large", "too large")
    assert body["details"]["max_bytes"] == MAX_BYTES


def test_upload_too_many_pixels(client: TestClient) -> None:
    data = png((2000, 1000), (255, 255, 255))  # 2 MP of one colour compresses small
    assert len(data) < MAX_BYTES
    r = client.post("/search/image", files={"file": ("q.png", data, "image/png")})
    assert_error(r, 413, "payload_too_large", "pixels")


def test_upload_without_file_part(client: TestClient) -> None:
    r = client.post("/search/image", data={"size": "3"}, files={"other": ("x", b"1")})
    assert_error(r, 422, "invalid_input", "file")


def test_upload_bad_form_fields(client: TestClient) -> None:
    files = {"file": ("q.png", png(), "image/png")}
    assert_error(
        client.post("/search/image", files=files, data={"size": "lots"}), 422, "invalid_request"
    )
    assert_error(
        client.post("/search/image", files=files, data={"filters": "{nope"}), 422, "invalid_input"
    )


def test_declared_body_too_large_is_rejected_early(client: TestClient) -> None:
    r = client.post(
        "/search/image",
        content=b"{}",
        headers={"content-type": "application/json", "content-length": str(10**9)},
    )
    assert_error(r, 413, "payload_too_large")


# --------------------------------------------------------------------------- image JSON


def test_image_base64_ok(client: TestClient) -> None:
    b64 = "data:image/png;base64," + base64.b64encode(png()).decode()
    r = client.post("/search/image", json={"base64": b64, "size": 3, "category": "off"})
    assert r.status_code == 200, r.text
    assert r.json()["category"]["source"] == "off"


def test_image_base64_invalid(client: TestClient) -> None:
    r = client.post("/search/image", json={"base64": "not*base64!"})
    assert_error(r, 422, "invalid_image", "base64")


def test_image_base64_too_large(client: TestClient) -> None:
    blob = base64.b64encode(b"\0" * (MAX_BYTES + 100)).decode()
    assert_error(client.post("/search/image", json={"base64": blob}), 413, "payload_too_large")


@pytest.mark.parametrize(
    "payload",
    [{}, {"item_id": "7", "base64": "AAAA"}, {"url": "ftp://x/y.jpg"}, {"item_id": "7", "k": 1}],
)
def test_image_json_source_validation(client: TestClient, payload: dict[str, Any]) -> None:
    assert_error(client.post("/search/image", json=payload), 422, "invalid_request")


def test_image_body_not_json(client: TestClient) -> None:
    r = client.post("/search/image", content=b"{oops", headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "json")
    r = client.post("/search/image", content=b"", headers={"content-type": "application/json"})
    assert_error(r, 422, "invalid_input", "empty")


def test_image_by_item_id(client: TestClient, backend: FakeBackend) -> None:
    r = client.post("/search/image", json={"item_id": "7", "size": 2})
    assert r.status_code == 200, r.text
    assert r.json()["category"] == {
        "label": "Shirts",
        "confidence": 1.0,
        "restricted": True,
        "source": "item",
        "fused": {},
        "classifier": {},
        "vote": {},
    }
    assert_error(client.post("/search/image", json={"item_id": "nope"}), 404, "not_found")


class ImageServer:
    def __init__(self) -> None:
        self.url = ""
        self.hits: list[str] = []  # paths requested
        self.connections = 0  # TCP connections accepted


@pytest.fixture
def image_server() -> Iterator[ImageServer]:
    payload = png()
    info = ImageServer()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 - http.server API
            info.hits.append(self.path)
            if self.path == "/ok.png":
                self.send_response(200)
                self.send_header("content-type", "image/png")
                self.send_header("content-length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            elif self.path == "/big.png":
                self.send_response(200)
                self.end_headers()
                self.wfile.write(b"\0" * (MAX_BYTES + 1000))
            elif self.path.startswith("/to-"):  # /to-<port>: redirect to 127.0.0.1:<port>
                self.send_response(302)
                self.send_header("location", f"http://127.0.0.1:{self.path[4:]}/ok.png")
                self.end_headers()
            else:
                self.send_response(404)
                self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    class Counting(ThreadingHTTPServer):
        def verify_request(self, request: Any, client_address: Any) -> bool:
            info.connections += 1
            return True

    server = Counting(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    info.url = f"http://127.0.0.1:{server.server_address[1]}"
    yield info
    server.shutdown()
    server.server_close()


@pytest.fixture
def internal_client(backend: FakeBackend) -> Iterator[TestClient]:
    """The API with 127.0.0.1 on its URL allow-list (how an operator admits an internal host)."""
    api = ApiSettings(
        max_upload_bytes=MAX_BYTES, max_image_pixels=MAX_PIXELS, url_allowed_hosts=["127.0.0.1"]
    )
    app = create_app(Settings(api=api), backend=backend, loaders={"joint": FakeModel})  # type: ignore[arg-type]
    with TestClient(app) as c:
        yield c


def test_image_by_url(internal_client: TestClient, image_server: ImageServer) -> None:
    client, base = internal_client, image_server.url
    r = client.post("/search/image", json={"url": f"{base}/ok.png", "size": 1})
    assert r.status_code == 200, r.text
    assert_error(
        client.post("/search/image", json={"url": f"{base}/missing.png"}),
        422,
        "invalid_input",
        "404",
    )
    assert_error(
        client.post("/search/image", json={"url": f"{base}/big.png"}),
        413,
        "payload_too_large",
    )


@pytest.mark.parametrize(
    "template",
    [
        "{base}/ok.png",
        "http://2130706433:{port}/ok.png",
        "http://0x7f000001:{port}/ok.png",
        "http://[::ffff:127.0.0.1]:{port}/ok.png",
        "http://localhost:{port}/ok.png",
    ],
)
def test_image_url_to_an_internal_host_is_refused(
    client: TestClient, image_server: ImageServer, template: str
) -> None:
    """The SSRF hole: by default the API fetches from public addresses only."""
    base = image_server.url
    url = template.format(base=base, port=base.rsplit(":", 1)[1])
    body = assert_error(
        client.post("/search/image", json={"url": url}), 422, "url_not_allowed", "not allowed"
    )
    assert body["details"]["url"] == url and body["details"]["reason"].startswith("loopback")
    assert "address" not in body["details"]  # resolved addresses are not echoed back
    assert image_server.connections == 0 and image_server.hits == []


def test_cluster_admin_url_is_refused(client: TestClient) -> None:
    # the reported request: the cluster's own admin endpoint (nothing needs to listen there)
    body = assert_error(
        client.post("/search/image", json={"url": "http://127.0.0.1:9200/_cat/indices"}),
        422,
        "url_not_allowed",
    )
    assert body["details"]["reason"] == "loopback"


def test_image_url_redirect_to_an_internal_host_is_refused(
    image_server: ImageServer, backend: FakeBackend
) -> None:
    """An allowed first hop redirecting to an address that is not allowed: refused, and the
    redirect target is never asked (tests/engine/test_safe_fetch.py does this across two servers)."""
    with TestClient(
        create_app(
            Settings(api=ApiSettings(url_allowed_hosts=["localhost"])),
            backend=backend,  # type: ignore[arg-type]
            loaders={"joint": FakeModel},
        )
    ) as named_only:
        port = image_server.url.rsplit(":", 1)[1]
        # localhost is allowed by name; its redirect to 127.0.0.1 (not on the list) is refused
        r = named_only.post("/search/image", json={"url": f"http://localhost:{port}/to-{port}"})
        body = assert_error(r, 422, "url_not_allowed")
        assert body["details"]["redirected_to"] == f"http://127.0.0.1:{port}/ok.png"
    assert image_server.hits == [f"/to-{port}"]  # the first hop only


def test_compose_url_to_an_internal_host_is_refused(
    client: TestClient, image_server: ImageServer
) -> None:
    r = client.post("/search/compose", json={"url": f"{image_server.url}/ok.png", "text": "in red"})
    assert_error(r, 422, "url_not_allowed")
    assert image_server.connections == 0


# --------------------------------------------------------------------------- compose


def test_compose_multipart_and_json(client: TestClient, backend: FakeBackend) -> None:
    r = client.post(
        "/search/compose",
        files={"file": ("q.png", png(), "image/png")},
        data={"text": "but in black", "unwanted": "striped,checked", "size": "2"},
    )
    assert r.status_code == 200, r.text
    soft = r.json()["soft_filter"]
    assert soft["wanted_words"] == ["black"]
    assert soft["unwanted_words"] == ["striped", "checked"]
    assert [v["field"] for v in soft["wanted"]] == ["attr_prob.base_colour.black"]
    r = client.post("/search/compose", json={"item_id": "7", "wanted": ["red"], "size": 2})
    assert r.status_code == 200, r.text
    sent = backend.searches()[-1]
    knn = sent["query"]["script_score"]["query"]["knn"]["image_embedding"]
    assert {"ids": {"values": ["7"]}} in knn["filter"]["bool"]["must_not"]


def test_compose_validation(client: TestClient) -> None:
    assert_error(
        client.post("/search/compose", json={"item_id": "7", "text_weight": -1}),
        422,
        "invalid_request",
    )
    r = client.post("/search/compose", files={"file": ("q.png", b"GIF89a", "image/gif")})
    assert_error(r, 422, "invalid_image")


def test_openapi_documents_both_body_kinds(client: TestClient) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/search/image", "/search/compose"):
        content = spec["paths"][path]["post"]["requestBody"]["content"]
        assert set(content) == {"application/json", "multipart/form-data"}
        assert "file" in content["multipart/form-data"]["schema"]["properties"]
    assert "SearchResponse" in spec["components"]["schemas"]
