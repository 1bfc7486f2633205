"""Image references, local and HTTP fetching, safe decoding."""

from __future__ import annotations

import io
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.catalog import Product
from engine.errors import ImageFetchError, InvalidImage
from ingest.images import ImageFetcher, ImageOptions, decode, error_code, fetch_all, image_refs


def _jpeg(size: tuple[int, int] = (64, 48), colour: tuple[int, int, int] = (200, 30, 30)) -> bytes:
    buf = io.BytesIO()
    Image.new("RGB", size, colour).save(buf, format="JPEG")
    return buf.getvalue()


def _noise_jpeg(size: tuple[int, int]) -> bytes:
    arr = np.random.default_rng(0).integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=80)
    return buf.getvalue()


class _Handler(BaseHTTPRequestHandler):
    calls: dict[str, int] = {}

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib name
        pass

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        self.calls[self.path] = self.calls.get(self.path, 0) + 1
        body, ctype, status = b"", "image/jpeg", 200
        if self.path == "/ok.jpg":
            body = _jpeg()
        elif self.path == "/page.html":
            body, ctype = b"<html>hi</html>", "text/html; charset=utf-8"
        elif self.path == "/big.jpg":
            body = b"\xff" * 5000
        elif self.path == "/flaky.jpg":
            if self.calls[self.path] == 1:
                status = 503
            else:
                body = _jpeg()
        else:
            status = 404
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _product(**kw: object) -> Product:
    return Product.model_validate({"id": "7", "title": "t", **kw})


def test_image_refs(tmp_path: Path) -> None:
    (tmp_path / "7.jpg").write_bytes(_jpeg())
    opts = ImageOptions(images_dir=tmp_path)
    assert image_refs(_product(), opts) == [str((tmp_path / "7.jpg").resolve())]
    # explicit image_urls win (deduplicated, order kept)
    assert image_refs(_product(image_urls=["b.jpg", "a.jpg", "b.jpg"]), opts) == ["b.jpg", "a.jpg"]
    # no image at all: text-only
    assert image_refs(_product(id="8"), opts) == []
    assert image_refs(_product(), ImageOptions()) == []


def test_local_fetch(tmp_path: Path) -> None:
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs" / "a.jpg").write_bytes(_jpeg())
    (tmp_path / "b.jpg").write_bytes(_jpeg())
    opts = ImageOptions(images_dir=tmp_path / "imgs", base_dir=tmp_path, max_bytes=10_000)
    f = ImageFetcher(opts)
    assert f.fetch("a.jpg") == _jpeg()  # relative to the images folder
    assert f.fetch("b.jpg") == _jpeg()  # relative to the catalog folder
    assert f.fetch(f"file://{tmp_path / 'b.jpg'}") == _jpeg()
    with pytest.raises(ImageFetchError, match="not found") as exc:
        f.fetch("missing.jpg")
    assert error_code(exc.value) == "image_not_found"
    (tmp_path / "huge.jpg").write_bytes(b"\0" * 20_000)
    with pytest.raises(ImageFetchError, match="too large"):
        f.fetch(str(tmp_path / "huge.jpg"))


# the test servers are internal hosts: let them through the way an operator would
LOCAL = ("127.0.0.1",)


def test_http_fetch(server: str) -> None:
    opts = ImageOptions(
        timeout_s=5, retries=2, backoff_s=0.01, max_bytes=4000, url_allowed_hosts=LOCAL
    )
    with ImageFetcher(opts) as f:
        assert decode(f.fetch(f"{server}/ok.jpg"), opts).size == (64, 48)
        with pytest.raises(ImageFetchError, match="HTTP 404"):
            f.fetch(f"{server}/missing.jpg")
        with pytest.raises(ImageFetchError, match="not an image"):
            f.fetch(f"{server}/page.html")
        with pytest.raises(ImageFetchError, match="too large"):
            f.fetch(f"{server}/big.jpg")
        # a 503 is retried
        assert f.fetch(f"{server}/flaky.jpg") == _jpeg()
        assert _Handler.calls["/flaky.jpg"] == 2
        assert _Handler.calls["/missing.jpg"] == 1  # 4xx is not retried


def test_http_unreachable_is_a_fetch_error() -> None:
    opts = ImageOptions(timeout_s=1, retries=1, backoff_s=0.01, url_allowed_hosts=LOCAL)
    with ImageFetcher(opts) as f, pytest.raises(ImageFetchError, match="2 attempt"):
        f.fetch("http://127.0.0.1:9/nothing.jpg")


def test_http_internal_host_refused_without_allow_list(server: str) -> None:
    """Without the allow-list a loopback/private image URL is a per-item failure, not fetched
    and not retried; the other images of the product still come through."""
    port = server.rsplit(":", 1)[1]
    opts = ImageOptions(retries=2, backoff_s=0.01)
    with ImageFetcher(opts) as f:
        for url in (f"{server}/refused.jpg", f"http://2130706433:{port}/refused.jpg"):
            with pytest.raises(ImageFetchError, match="not allowed") as exc:
                f.fetch(url)
            assert error_code(exc.value) == "url_not_allowed"
            assert exc.value.details["ref"] == url and exc.value.details["reason"] == "loopback"
        assert "/refused.jpg" not in _Handler.calls
    with ImageFetcher(ImageOptions(url_allowed_hosts=("127.0.0.2",))) as f:
        ok, bad = fetch_all(
            f, [f"{server}/refused.jpg", f"http://[::ffff:127.0.0.1]:{port}/refused.jpg"]
        )
    assert ok == [] and [error_code(e) for _, e in bad] == ["url_not_allowed"] * 2
    assert "/refused.jpg" not in _Handler.calls


def test_fetch_all_keeps_order_and_errors(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(_jpeg())
    f = ImageFetcher(ImageOptions(images_dir=tmp_path))
    ok, bad = fetch_all(f, ["a.jpg", "nope.jpg"])
    assert [x.ref for x in ok] == ["a.jpg"] and len(ok[0].sha1) == 40
    assert [r for r, _ in bad] == ["nope.jpg"]


def test_decode_failures() -> None:
    opts = ImageOptions(max_pixels=1_000_000)
    good = _jpeg((300, 200))
    with pytest.raises(InvalidImage) as exc:
        decode(good[: len(good) // 2], opts)  # truncated
    assert error_code(exc.value) == "image_invalid"
    with pytest.raises(InvalidImage):
        decode(b"this is not an image", opts)
    with pytest.raises(InvalidImage):
        decode(b"", opts)
    corrupt = bytearray(good)
    corrupt[200:400] = b"\x00" * 200
    with pytest.raises(InvalidImage):
        decode(bytes(corrupt[:300]), opts)
    with pytest.raises(InvalidImage, match="too many pixels"):
        decode(_jpeg((1200, 1000)), opts)  # over max_pixels: decompression-bomb guard


def test_draft_decode_of_large_jpeg() -> None:
    data = _noise_jpeg((1800, 1200))
    opts = ImageOptions(draft_size=448)
    img = decode(data, opts)
    assert img.mode == "RGB"
    assert min(img.size) >= 448 and img.size[0] < 1800  # downscaled by DCT scaling
    full = decode(data, ImageOptions(draft_size=None))
    assert full.size == (1800, 1200)
    small = decode(_jpeg((300, 200)), opts)
    assert small.size == (300, 200)  # too small to gain from draft mode
