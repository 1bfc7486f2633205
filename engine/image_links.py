"""Product images as URLs a browser can load: ``/images/{item_id}/{n}``.

A product document keeps where its images really are (``source_image_urls``: local paths or
http(s) URLs, as ingest found them; documents indexed before that field existed have them in
``image_urls``). Every API response carries instead the links of the image route
(``engine.api.routers.images``), relative to the API's root, which serves the bytes with the
ingest limits. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import quote

IMAGE_ROUTE = "/images"
# the document fields holding the original locations, newest first
SOURCE_FIELDS: tuple[str, ...] = ("source_image_urls", "image_urls")


def image_sources(doc: Mapping[str, Any]) -> list[str]:
    """The original image locations of a product document (primary first; may be empty)."""
    for name in SOURCE_FIELDS:
        value = doc.get(name)
        if isinstance(value, list) and value:
            return [str(v) for v in value]
        if isinstance(value, str) and value:
            return [value]
    return []


def image_link(item_id: str, n: int, width: int | None = None) -> str:
    """The served URL of the product's ``n``-th image (``width``: a thumbnail)."""
    url = f"{IMAGE_ROUTE}/{quote(str(item_id), safe='')}/{int(n)}"
    return f"{url}?w={int(width)}" if width else url


def image_links(item_id: str, doc: Mapping[str, Any]) -> list[str] | None:
    """The served URLs of every image of a product document (None when it has none)."""
    n = len(image_sources(doc))
    return [image_link(item_id, i) for i in range(n)] or None
