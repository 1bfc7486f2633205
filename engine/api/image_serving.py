"""Serving product images: ``GET /images/{item_id}/{n}`` (:mod:`engine.api.routers.images`).

:class:`ImageServer` looks the product up, takes its ``n``-th original location
(:func:`engine.image_links.image_sources`: a local file or an http(s) URL, as ingest found it)
and reads the bytes with the ingest limits: at most ``DEFAULT_MAX_BYTES`` bytes and
``DEFAULT_MAX_PIXELS`` pixels, URLs only through :class:`engine.safe_fetch.SafeFetcher` with
``settings.ingest.url_allowed_hosts`` (the hosts ingest may fetch from) and an ``image/*``
content type. Every image is decoded before it is served (a source that is not an image is
refused); ``width`` gives a JPEG thumbnail. Results are kept in a small LRU cache (by bytes),
with a strong ETag: the sha1 of the source bytes and the width.
"""

from __future__ import annotations

import hashlib
import io
import logging
import threading
from dataclasses import dataclass

import httpx
from cachetools import LRUCache
from PIL import Image

from engine.backend import Backend
from engine.catalog.product import find_local_image, is_remote_image
from engine.errors import (
    ForbiddenUrl,
    ImageFetchError,
    InvalidImage,
    NotFound,
    PayloadTooLarge,
)
from engine.image_links import SOURCE_FIELDS, image_sources
from engine.models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image
from engine.safe_fetch import SafeFetcher

logger = logging.getLogger(__name__)

MIN_WIDTH, MAX_WIDTH = 16, 2048
CACHE_BYTES = 64 * 1024 * 1024
USER_AGENT = "outfit-search-images/0.1"
# the document fields a lookup needs (everything else excluded by the cluster)
_EXCLUDES = ["*_embedding", "images", "attr_prob", "binary_code", "description"]


@dataclass(frozen=True)
class ServedImage:
    data: bytes
    media_type: str
    etag: str  # quoted, as sent in the ETag header


def _check_image_response(resp: httpx.Response) -> None:
    url, status = str(resp.request.url), resp.status_code
    if status >= 400:
        raise ImageFetchError(f"image source answered HTTP {status}", url=url, status=status)
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype.startswith("image/"):
        raise InvalidImage(
            f"image source is not an image: content-type {ctype or 'missing'!r}",
            url=url,
            content_type=ctype,
        )


class ImageServer:
    """Product images by id and position; thread-safe."""

    def __init__(
        self,
        backend: Backend,
        index: str,
        allowed_hosts: list[str] | tuple[str, ...] = (),
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        timeout_s: float = 10.0,
    ) -> None:
        self.backend = backend
        self.index = index
        self.max_bytes = max_bytes
        self.max_pixels = max_pixels
        self._allowed = tuple(allowed_hosts)
        self._timeout_s = timeout_s
        self._http: SafeFetcher | None = None
        self._cache: LRUCache[tuple[str, int, int | None], ServedImage] = LRUCache(
            maxsize=CACHE_BYTES, getsizeof=lambda v: len(v.data) + 200
        )
        self._lock = threading.Lock()

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def _fetcher(self) -> SafeFetcher:
        with self._lock:
            if self._http is None:
                self._http = SafeFetcher(
                    self._allowed,
                    timeout_s=self._timeout_s,
                    headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
                    max_connections=8,
                )
            return self._http

    def image(self, item_id: str, n: int, width: int | None = None) -> ServedImage:
        """The product's ``n``-th image (``width``: a thumbnail that wide, at most)."""
        key = (item_id, n, width)
        with self._lock:
            hit = self._cache.get(key)
        if hit is not None:
            return hit
        ref = self.source(item_id, n)
        data = self._read(ref)
        served = self._render(data, width)
        with self._lock:
            self._cache[key] = served
        return served

    def source(self, item_id: str, n: int) -> str:
        """The original location of the product's ``n``-th image (NotFound: no such image)."""
        try:
            doc = self.backend.get(self.index, item_id, source_excludes=_EXCLUDES)
        except NotFound:
            raise NotFound(f"no product {item_id!r}", item_id=item_id) from None
        refs = image_sources(doc)
        if not 0 <= n < len(refs):
            raise NotFound(
                f"product {item_id!r} has no image {n} ({len(refs)} image(s))",
                item_id=item_id,
                n=n,
                images=len(refs),
                fields=list(SOURCE_FIELDS),
            )
        return refs[n]

    def _read(self, ref: str) -> bytes:
        if is_remote_image(ref):
            try:
                return self._fetcher().fetch(
                    ref, max_bytes=self.max_bytes, check=_check_image_response
                )
            except (ForbiddenUrl, PayloadTooLarge, InvalidImage):
                raise
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise ImageFetchError(f"cannot fetch the image source: {exc}", url=ref) from exc
        path = find_local_image(ref)  # stored absolute by ingest; file:// URLs too
        try:
            size = path.stat().st_size
        except FileNotFoundError:
            raise NotFound("the image file is missing", path=str(path)) from None
        except OSError as exc:
            raise ImageFetchError(f"cannot read the image file: {exc}", path=str(path)) from exc
        if not path.is_file():
            raise NotFound("the image source is not a file", path=str(path))
        if size > self.max_bytes:
            raise PayloadTooLarge(
                f"image file too large: {size} bytes > limit of {self.max_bytes} bytes",
                size=size,
                max_bytes=self.max_bytes,
            )
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageFetchError(f"cannot read the image file: {exc}", path=str(path)) from exc

    def _render(self, data: bytes, width: int | None) -> ServedImage:
        img = decode_image(data, max_bytes=self.max_bytes, max_pixels=self.max_pixels)
        digest = hashlib.sha1(data).hexdigest()[:20]
        if width is None:
            fmt = Image.open(io.BytesIO(data)).format or ""
            media = Image.MIME.get(fmt)
            if media is not None:
                return ServedImage(data, media, f'"{digest}"')
            width = img.width  # an odd format: re-encode at full size
        if img.width > width:
            img = img.resize((width, max(1, round(img.height * width / img.width))), Image.LANCZOS)
        buf = io.BytesIO()
        img.save(buf, format="JPEG", quality=85, optimize=True)
        return ServedImage(buf.getvalue(), "image/jpeg", f'"{digest}-w{width}"')
