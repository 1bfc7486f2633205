"""Fetch product images (local files or http(s) URLs) and decode them safely.

* :func:`image_refs` lists a product's images: its ``image_urls`` (paths absolute or relative to
  the images folder, the catalog's folder or the working directory; ``file://`` or
  ``http(s)://`` URLs) or, when it has none, ``<images_dir>/<id>.jpg`` (as an absolute path) if
  that file exists. The first is the primary image.
* :class:`ImageFetcher` reads bytes: local files with a size limit; HTTP through
  :class:`engine.safe_fetch.SafeFetcher` (public addresses only, plus the
  ``url_allowed_hosts`` option; redirects checked hop by hop; a streamed size limit) with
  timeouts, retries with backoff (connection errors, 5xx, 429) and a content-type check.
  Failures raise :class:`engine.errors.ImageFetchError` (code ``url_not_allowed`` for a refused
  URL, see :func:`error_code`).
* :func:`decode` goes through :func:`engine.models.images.decode_image`; large JPEGs are first
  decoded with PIL's draft mode (DCT scaling) at no less than ``draft_size`` pixels a side, which
  is several times faster and loses nothing the 224px encoder would see.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from PIL import Image

from engine.catalog import Product
from engine.catalog.product import find_local_image, is_remote_image
from engine.errors import ForbiddenUrl, ImageFetchError, InvalidImage, PayloadTooLarge
from engine.models.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, decode_image
from engine.safe_fetch import SafeFetcher

logger = logging.getLogger(__name__)

USER_AGENT = "outfit-search-ingest/0.1"


@dataclass(frozen=True)
class ImageOptions:
    images_dir: Path | None = None
    base_dir: Path | None = None  # where relative image paths are looked up (after images_dir)
    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5
    max_bytes: int = DEFAULT_MAX_BYTES
    max_pixels: int = DEFAULT_MAX_PIXELS
    draft_size: int | None = 448  # None disables JPEG draft decoding
    # internal image hosts fetched although not public: names, IPs or CIDR networks
    # (settings.ingest.url_allowed_hosts); every other host must resolve to public addresses
    url_allowed_hosts: tuple[str, ...] = ()


def image_refs(product: Product, options: ImageOptions) -> list[str]:
    """The product's image references, primary first (empty: a text-only product)."""
    if product.image_urls:
        return list(dict.fromkeys(product.image_urls))  # de-duplicated, order kept
    if options.images_dir is not None:
        path = Path(options.images_dir).resolve() / f"{product.id}.jpg"
        if path.is_file():
            return [str(path)]
    return []


def resolve_local(ref: str, options: ImageOptions) -> Path:
    """A local image reference -> the file path (absolute, or relative to the known folders)."""
    return find_local_image(ref, [options.images_dir, options.base_dir])


def located(refs: Sequence[str], options: ImageOptions) -> list[str]:
    """The refs as locations the API can serve later (``source_image_urls``): URLs as they
    are, local files as absolute paths."""
    return [
        ref if is_remote_image(ref) else str(resolve_local(ref, options).resolve()) for ref in refs
    ]


class ImageFetcher:
    """Reads image bytes; thread-safe (one shared HTTP connection pool)."""

    def __init__(self, options: ImageOptions) -> None:
        self.options = options
        self._http: SafeFetcher | None = None
        self._lock = threading.Lock()

    @property
    def http(self) -> SafeFetcher:
        with self._lock:
            if self._http is None:
                self._http = SafeFetcher(
                    self.options.url_allowed_hosts,
                    timeout_s=self.options.timeout_s,
                    headers={"User-Agent": USER_AGENT, "Accept": "image/*"},
                    max_connections=16,
                )
            return self._http

    def close(self) -> None:
        with self._lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def __enter__(self) -> ImageFetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def fetch(self, ref: str) -> bytes:
        if is_remote_image(ref):
            return self._fetch_http(ref)
        return self._read_local(ref)

    def _read_local(self, ref: str) -> bytes:
        path = resolve_local(ref, self.options)
        try:
            size = path.stat().st_size
        except FileNotFoundError as exc:
            raise ImageFetchError(f"image file not found: {path}", ref=ref) from exc
        except OSError as exc:
            raise ImageFetchError(f"cannot read image file {path}: {exc}", ref=ref) from exc
        if size > self.options.max_bytes:
            raise ImageFetchError(
                f"image file too large: {size} bytes > {self.options.max_bytes}",
                ref=ref,
                size=size,
            )
        try:
            return path.read_bytes()
        except OSError as exc:
            raise ImageFetchError(f"cannot read image file {path}: {exc}", ref=ref) from exc

    def _fetch_http(self, url: str) -> bytes:
        opts = self.options
        last: str = ""
        for attempt in range(opts.retries + 1):
            if attempt:
                time.sleep(opts.backoff_s * 2 ** (attempt - 1))
            try:
                return self.http.fetch(url, max_bytes=opts.max_bytes, check=_image_response)
            except _Retryable as exc:
                last = str(exc)
            except ForbiddenUrl as exc:
                raise ImageFetchError(
                    f"{exc.message} ({url}; internal image hosts go in "
                    "settings.ingest.url_allowed_hosts)",
                    ref=url,
                    refused=exc.code,
                    **exc.details,
                ) from exc
            except PayloadTooLarge as exc:
                size = exc.details.get("size")
                what = f"{size} bytes >" if size else "more than"
                raise ImageFetchError(
                    f"image too large: {what} {opts.max_bytes} bytes ({url})", ref=url
                ) from exc
            except httpx.TimeoutException as exc:
                last = f"timeout ({type(exc).__name__})"
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                raise ImageFetchError(f"cannot fetch {url}: {exc}", ref=url) from exc
            logger.debug("fetch %s failed (%s), attempt %d", url, last, attempt + 1)
        raise ImageFetchError(
            f"cannot fetch {url} after {opts.retries + 1} attempt(s): {last}", ref=url
        )


class _Retryable(Exception):
    """A response worth asking again for (429, 5xx)."""


def _image_response(resp: httpx.Response) -> None:
    """Checks the final response before its body is read."""
    url, status = str(resp.request.url), resp.status_code
    if status == 429 or status >= 500:
        raise _Retryable(f"HTTP {status}")
    if status >= 400:
        raise ImageFetchError(f"HTTP {status} for {url}", ref=url, status=status)
    ctype = resp.headers.get("content-type", "").split(";")[0].strip().lower()
    if not ctype.startswith("image/"):
        raise ImageFetchError(
            f"not an image: content-type {ctype or 'missing'!r} for {url}",
            ref=url,
            content_type=ctype,
        )


def decode(data: bytes, options: ImageOptions) -> Image.Image:
    """Decode image bytes into RGB (large JPEGs downscaled while decoding, ``draft_size``) or
    raise :class:`InvalidImage`."""
    return decode_image(
        data,
        max_bytes=options.max_bytes,
        max_pixels=options.max_pixels,
        draft_size=options.draft_size,
    )


@dataclass(frozen=True)
class FetchedImage:
    ref: str
    data: bytes
    sha1: str


def fetch_all(
    fetcher: ImageFetcher, refs: Sequence[str]
) -> tuple[list[FetchedImage], list[tuple[str, InvalidImage]]]:
    """Fetch every ref; (fetched images, [(ref, error)]) in ref order."""
    import hashlib

    ok: list[FetchedImage] = []
    bad: list[tuple[str, InvalidImage]] = []
    for ref in refs:
        try:
            data = fetcher.fetch(ref)
        except InvalidImage as exc:
            bad.append((ref, exc))
            continue
        ok.append(FetchedImage(ref, data, hashlib.sha1(data).hexdigest()))
    return ok, bad


def error_code(exc: Any) -> str:
    """Failure code for an image error."""
    if isinstance(exc, ImageFetchError):
        if exc.details.get("refused"):
            return str(exc.details["refused"])  # url_not_allowed
        return "image_not_found" if "not found" in exc.message else "image_fetch_failed"
    return "image_invalid"
