"""``GET /images/{item_id}/{n}`` through the real app and the real node: product documents with
``source_image_urls`` pointing at a local file and at a URL on a local HTTP server (allowed by
``settings.ingest.url_allowed_hosts``, as ingest would be), thumbnails, ETag, and the refusals
(unknown id or number, oversize, not an image, a host ingest may not fetch from)."""

from __future__ import annotations

import io
import threading
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image

from engine.api.app import create_app
from engine.backend import Backend
from engine.models.images import DEFAULT_MAX_BYTES
from engine.settings import ClusterSettings, IngestSettings, Settings
from tests.conftest import BOTH_ENGINES, SAMPLE, TEST_PREFIX

pytestmark = pytest.mark.opensearch
CLUSTER_ENGINES = BOTH_ENGINES

PHOTO = SAMPLE / "images" / "10018.jpg"


def jpeg(size: tuple[int, int] = (300, 400)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(buf, format="JPEG")
    return buf.getvalue()


class Server:
    """A local HTTP server: path -> (content type, body, declared length or None)."""

    def __init__(self) -> None:
        self.routes: dict[str, tuple[str, bytes, int | None]] = {}
        self.hits: list[str] = []
        routes, hits = self.routes, self.hits

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server API
                hits.append(self.path)
                ctype, body, declared = routes[self.path]
                self.send_response(200)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(declared or len(body)))
                self.end_headers()
                self.wfile.write(body[: declared or len(body)])

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture(scope="module")
def server() -> Iterator[Server]:
    s = Server()
    s.routes["/red.jpg"] = ("image/jpeg", jpeg(), None)
    s.routes["/page.html"] = ("text/html", b"<html>not an image</html>", None)
    s.routes["/fake.jpg"] = ("image/jpeg", b"this is not a jpeg at all", None)
    s.routes["/huge.jpg"] = ("image/jpeg", b"\xff\xd8" * 10, DEFAULT_MAX_BYTES + 1)
    yield s
    s.close()


@pytest.fixture(scope="module")
def app_env(
    cluster: Backend, settings: Settings, server: Server, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Settings, str]]:
    prefix = f"{TEST_PREFIX}-img{uuid.uuid4().hex[:8]}"
    cs = ClusterSettings.model_validate({**settings.cluster.model_dump(), "index_prefix": prefix})
    s = settings.model_copy(
        update={"cluster": cs, "ingest": IngestSettings(url_allowed_hosts=["127.0.0.1"])}
    )
    tmp = tmp_path_factory.mktemp("images")
    big = tmp / "big.jpg"
    with big.open("wb") as f:  # sparse: over the limit without writing 10 MB
        f.truncate(DEFAULT_MAX_BYTES + 1)
    text = tmp / "notes.jpg"
    text.write_text("not an image")
    docs = {
        "local": [str(PHOTO)],
        "both": [str(PHOTO), server.url("/red.jpg")],
        "html": [server.url("/page.html")],
        "fake": [server.url("/fake.jpg")],
        "huge": [server.url("/huge.jpg")],
        "bigfile": [str(big)],
        "textfile": [str(text)],
        "missing": [str(tmp / "gone.jpg")],
        "old": None,  # indexed before source_image_urls: image_urls holds the location
    }
    index = cs.products_index
    cluster.ensure_index(index)
    try:
        for item_id, refs in docs.items():
            doc: dict[str, Any] = {"id": item_id, "title": f"item {item_id}"}
            if refs is None:
                doc["image_urls"] = [str(PHOTO)]
            else:
                doc["source_image_urls"] = refs
            cluster.index_doc(index, item_id, doc, refresh=True)
        yield s, index
    finally:
        cluster.delete_index(index)


@pytest.fixture(scope="module")
def client(app_env: tuple[Settings, str], cluster: Backend) -> Iterator[TestClient]:
    with TestClient(create_app(app_env[0], backend=cluster)) as c:
        yield c


def assert_error(resp: Any, status: int, code: str) -> dict[str, Any]:
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"code", "message", "details"} and body["code"] == code, body
    return body


def test_local_file_is_served_as_is_with_caching_headers(client: TestClient) -> None:
    r = client.get("/images/local/0")
    assert r.status_code == 200
    assert r.headers["content-type"] == "image/jpeg"
    assert r.content == PHOTO.read_bytes()
    assert "max-age" in r.headers["cache-control"]
    etag = r.headers["etag"]
    again = client.get("/images/local/0", headers={"If-None-Match": etag})
    assert again.status_code == 304 and again.headers["etag"] == etag and not again.content


def test_thumbnail_width(client: TestClient) -> None:
    full = Image.open(io.BytesIO(PHOTO.read_bytes()))
    r = client.get("/images/local/0?w=60")
    assert r.status_code == 200 and r.headers["content-type"] == "image/jpeg"
    img = Image.open(io.BytesIO(r.content))
    assert img.width == 60 and abs(img.height - round(full.height * 60 / full.width)) <= 1
    assert r.headers["etag"] != client.get("/images/local/0").headers["etag"]
    assert_error(client.get("/images/local/0?w=5"), 422, "invalid_request")


def test_url_source_is_fetched_through_the_allow_list(client: TestClient, server: Server) -> None:
    r = client.get("/images/both/1")
    assert r.status_code == 200 and r.content == server.routes["/red.jpg"][1]
    assert "/red.jpg" in server.hits


def test_url_host_not_allowed_for_ingest_is_refused(
    app_env: tuple[Settings, str], cluster: Backend, server: Server
) -> None:
    s = app_env[0].model_copy(update={"ingest": IngestSettings()})  # loopback not allowed
    before = len(server.hits)
    with TestClient(create_app(s, backend=cluster)) as c:
        body = assert_error(c.get("/images/both/1"), 422, "url_not_allowed")
    assert "127.0.0.1" in str(body["details"]) and len(server.hits) == before


def test_old_documents_serve_their_image_urls(client: TestClient) -> None:
    r = client.get("/images/old/0")
    assert r.status_code == 200 and r.content == PHOTO.read_bytes()


@pytest.mark.parametrize("path", ["/images/nope/0", "/images/local/1", "/images/missing/0"])
def test_unknown_ids_and_numbers_are_404(client: TestClient, path: str) -> None:
    assert_error(client.get(path), 404, "not_found")


@pytest.mark.parametrize("item_id", ["huge", "bigfile"])
def test_oversize_sources_are_refused(client: TestClient, item_id: str) -> None:
    body = assert_error(client.get(f"/images/{item_id}/0"), 413, "payload_too_large")
    assert body["details"]["max_bytes"] == DEFAULT_MAX_BYTES


@pytest.mark.parametrize(
    ("item_id", "words"), [("html", "content-type"), ("fake", "image"), ("textfile", "image")]
)
def test_non_image_sources_are_refused(client: TestClient, item_id: str, words: str) -> None:
    body = assert_error(client.get(f"/images/{item_id}/0"), 422, "invalid_image")
    assert words in body["message"]


def test_search_hits_link_to_the_image_route(
    cluster: Backend, app_env: tuple[Settings, str]
) -> None:
    """What the search service answers: image_urls are the served links, in order."""
    from engine.image_links import image_links
    from engine.search.stages import to_hit

    doc = cluster.get(app_env[1], "both")
    hit = to_hit({"_id": "both", "_score": 1.0, "_source": doc})
    assert hit.image_urls == image_links("both", doc) == ["/images/both/0", "/images/both/1"]
    assert to_hit({"_id": "a/b", "_source": {"image_urls": ["x.jpg"]}}).image_urls == [
        "/images/a%2Fb/0"
    ]
