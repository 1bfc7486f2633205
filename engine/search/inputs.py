"""Query photos from untrusted input: raw bytes, base64 text or an http(s) URL.

Size limits come from :class:`engine.settings.ApiSettings`: more bytes than
``max_upload_bytes`` (or more pixels than ``max_image_pixels``) -> :class:`PayloadTooLarge`
(HTTP 413); empty, not an image, truncated or corrupt -> :class:`InvalidImage` (HTTP 422).
"""

from __future__ import annotations

import base64
import binascii
import logging
import re

from PIL import Image

from engine.errors import ForbiddenUrl, InvalidImage, InvalidInput, PayloadTooLarge
from engine.models.images import decode_image
from engine.settings import ApiSettings

logger = logging.getLogger(__name__)

_DATA_URL = re.compile(r"^data:[\w/+.-]*(;[\w=.-]+)*;base64,", re.IGNORECASE)


def check_size(size: int, api: ApiSettings) -> None:
    if size > api.max_upload_bytes:
        raise PayloadTooLarge(
            f"image is too large: {size} bytes > limit of {api.max_upload_bytes} bytes",
            size=size,
            max_bytes=api.max_upload_bytes,
        )


def image_from_bytes(data: bytes, api: ApiSettings) -> Image.Image:
    """Decode an uploaded photo with the API's limits."""
    check_size(len(data), api)
    try:
        return decode_image(
            data,
            max_bytes=api.max_upload_bytes,
            max_pixels=api.max_image_pixels,
            draft_size=api.upload_draft_size,
        )
    except InvalidImage as exc:
        if "max_pixels" in exc.details or "decompression bomb" in exc.message:
            raise PayloadTooLarge(exc.message, **exc.details) from exc
        raise


def max_base64_chars(api: ApiSettings) -> int:
    return 4 * ((api.max_upload_bytes + 2) // 3) + 256


def image_from_base64(text: str, api: ApiSettings) -> Image.Image:
    """Decode base64 (optionally a ``data:image/...;base64,`` URL) into a photo."""
    s = _DATA_URL.sub("", text.strip(), count=1)
    s = "".join(s.split())
    if not s:
        raise InvalidImage("image is empty (no base64 data)")
    if len(s) > max_base64_chars(api):
        raise PayloadTooLarge(
            f"image is too large: base64 text of {len(s)} characters exceeds the "
            f"{api.max_upload_bytes}-byte limit",
            max_bytes=api.max_upload_bytes,
        )
    try:
        data = base64.b64decode(s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidImage(f"base64 field is not valid base64: {exc}") from exc
    return image_from_bytes(data, api)


def image_from_url(url: str, api: ApiSettings, *, timeout_s: float = 5.0) -> Image.Image:
    """Fetch an http(s) image URL and decode it: public addresses only (plus
    ``api.url_allowed_hosts``), streamed and stopped at the byte limit; see
    :mod:`engine.safe_fetch`. A refused URL raises :class:`ForbiddenUrl` (HTTP 422)."""
    import httpx

    from engine.safe_fetch import SafeFetcher

    if not url.lower().startswith(("http://", "https://")):
        raise InvalidInput("image url must be http:// or https://", url=url)
    try:
        with SafeFetcher(api.url_allowed_hosts, timeout_s=timeout_s, max_connections=1) as fetch:
            data = fetch.fetch(url, max_bytes=api.max_upload_bytes)
    except ForbiddenUrl as exc:
        # the resolved address stays in the log, not in the answer to the caller
        logger.info("refused image url %s: %s", url, exc.message)
        details = {
            k: v for k, v in exc.details.items() if k in ("url", "host", "reason", "redirected_to")
        }
        message = exc.message
        if "address" in exc.details:
            message = (
                f"image url not allowed: host {exc.details.get('host')!r} is not a public "
                f"internet address ({exc.details.get('reason')})"
            )
        raise ForbiddenUrl(
            message,
            **details,
        ) from None
    except PayloadTooLarge as exc:
        raise PayloadTooLarge(
            f"image is too large: {exc.message.removeprefix('response too large: ')}",
            **exc.details,
        ) from exc
    except httpx.HTTPStatusError as exc:
        status = exc.response.status_code
        raise InvalidInput(
            f"could not fetch image url: HTTP {status}", url=url, status=status
        ) from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InvalidInput(f"could not fetch image url: {exc}", url=url) from exc
    return image_from_bytes(data, api)
