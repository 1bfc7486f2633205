"""The product model (our field names) and the fixed train/test split.

A retailer's columns become these fields through its mapping (:mod:`engine.catalog.mapping`);
files are read by :mod:`engine.catalog.readers`. Fields a catalog lacks (no ``style_note``, no
``rating``) are ``None``; placeholder values ("NA", "-", ...) are ``None`` too.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from engine.catalog.vocabulary import is_placeholder

# Fields with keyword semantics that queries filter on.
KEYWORD_FIELDS = (
    "brand",
    "gender",
    "age_group",
    "master_category",
    "sub_category",
    "article_type",
    "base_colour",
    "season",
    "usage",
)


class Product(BaseModel):
    """One catalog item. Only ``id`` and ``title`` are required."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    title: str = Field(min_length=1)
    brand: str | None = None
    gender: str | None = None
    age_group: str | None = None
    master_category: str | None = None
    sub_category: str | None = None
    article_type: str | None = None
    base_colour: str | None = None
    colour1: str | None = None
    colour2: str | None = None
    season: str | None = None
    year: str | None = None
    usage: str | None = None
    price: float | None = Field(default=None, ge=0)
    discounted_price: float | None = Field(default=None, ge=0)
    rating: float | None = None
    sales: float | None = Field(default=None, ge=0)
    clicks: float | None = Field(default=None, ge=0)
    in_stock: bool = True
    added_at: int | None = None
    variant: str | None = None
    attributes: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    style_note: str | None = None
    image_urls: list[str] = Field(default_factory=list)

    @field_validator("id", mode="before")
    @classmethod
    def _id_to_str(cls, v: Any) -> Any:
        if isinstance(v, bool) or v is None:
            raise ValueError("id must be a non-empty string or integer")
        if isinstance(v, int):
            return str(v)
        return v

    @field_validator(
        "brand",
        "gender",
        "age_group",
        "master_category",
        "sub_category",
        "article_type",
        "base_colour",
        "colour1",
        "colour2",
        "season",
        "usage",
        "variant",
        "description",
        "style_note",
        mode="before",
    )
    @classmethod
    def _blank_to_none(cls, v: Any) -> Any:
        if is_placeholder(v):  # "", "NA", "-", ... (engine.catalog.vocabulary)
            return None
        return v

    @field_validator("title", mode="before")
    @classmethod
    def _placeholder_title(cls, v: Any) -> Any:
        return None if is_placeholder(v) else v

    @field_validator("year", mode="before")
    @classmethod
    def _year_to_str(cls, v: Any) -> Any:
        if v is None or (isinstance(v, str) and not v.strip()):
            return None
        return str(v)

    @field_validator("attributes", mode="before")
    @classmethod
    def _clean_attributes(cls, v: Any) -> Any:
        if v is None:
            return {}
        if not isinstance(v, dict):
            raise ValueError("attributes must be an object")
        return {str(k): str(val).strip() for k, val in v.items() if not is_placeholder(val)}

    @property
    def colours(self) -> list[str]:
        return [c for c in (self.base_colour, self.colour1, self.colour2) if c]


@dataclass(frozen=True)
class RowError:
    """A line that could not become a Product (the short view of a reader's failed Row)."""

    line: int
    item_id: str | None
    reason: str


def is_test_id(item_id: str) -> bool:
    """The one fixed split: test when int(sha1(id).hexdigest(), 16) % 5 == 0."""
    return int(hashlib.sha1(item_id.encode("utf-8")).hexdigest(), 16) % 5 == 0


def image_path(images_dir: Path, item_id: str) -> Path:
    return Path(images_dir) / f"{item_id}.jpg"


def is_remote_image(ref: str) -> bool:
    """An http(s) image reference (fetched over the network, not read from disk)."""
    return ref.lower().startswith(("http://", "https://"))


def find_local_image(ref: str, folders: Sequence[Path | None] = ()) -> Path:
    """A local image reference (a path or ``file://`` URL) -> its file: an absolute path as it
    is; a relative one in the first of ``folders`` that holds it (else the working directory);
    when none holds it, the path under the first folder (so an error names where it looked)."""
    text = ref[7:] if ref.lower().startswith("file://") else ref
    path = Path(text)
    if path.is_absolute():
        return path
    candidates = [Path(f) / path for f in folders if f is not None]
    for candidate in (*candidates, path):
        if candidate.is_file():
            return candidate
    return candidates[0] if candidates else path


def local_image_files(products: Iterable[Product], images_dir: Path | None) -> dict[str, Path]:
    """Item id -> :func:`local_image_path` of the products that have one."""
    return {p.id: path for p in products if (path := local_image_path(p, images_dir))}


def local_image_path(product: Product, images_dir: Path | None) -> Path | None:
    """The first of a product's images that is a local file: its ``image_urls`` (absolute, or
    relative to ``images_dir``), else ``<images_dir>/<id>.jpg``; None when there is none
    (http(s) images are fetched by ingest, not here)."""
    for ref in product.image_urls:
        if not is_remote_image(ref) and (path := find_local_image(ref, [images_dir])).is_file():
            return path
    if images_dir is not None:
        path = Path(images_dir) / f"{product.id}.jpg"
        if path.is_file():
            return path
    return None
