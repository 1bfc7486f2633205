"""The catalog format we read (the shared Fashion Product Images layout) and the fixed split.

A catalog is JSONL (optionally gzipped) with one product per line; photos are ``<id>.jpg`` in
a folder. Fields a retailer's catalog lacks (no ``style_note``, no ``rating``) are ``None``.
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

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
        if isinstance(v, str) and not v.strip():
            return None
        return v

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
        return {str(k): str(val) for k, val in v.items() if val not in (None, "")}

    @property
    def colours(self) -> list[str]:
        return [c for c in (self.base_colour, self.colour1, self.colour2) if c]


@dataclass(frozen=True)
class RowError:
    """A line that could not become a Product."""

    line: int
    item_id: str | None
    reason: str


def is_test_id(item_id: str) -> bool:
    """The one fixed split: test when int(sha1(id).hexdigest(), 16) % 5 == 0."""
    return int(hashlib.sha1(item_id.encode("utf-8")).hexdigest(), 16) % 5 == 0


def _open_text(path: Path) -> Any:
    if path.suffix == ".gz":
        return gzip.open(path, "rt", encoding="utf-8")
    return path.open("r", encoding="utf-8")


def iter_catalog(path: Path) -> Iterator[Product | RowError]:
    """Yield a Product or a RowError for every non-blank line; never raises on bad rows."""
    with _open_text(Path(path)) as fh:
        for lineno, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                raw = json.loads(line)
            except json.JSONDecodeError as exc:
                yield RowError(lineno, None, f"malformed JSON: {exc.msg}")
                continue
            if not isinstance(raw, dict):
                yield RowError(lineno, None, "row is not a JSON object")
                continue
            rid = raw.get("id")
            try:
                yield Product.model_validate(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                loc = ".".join(str(p) for p in first["loc"])
                yield RowError(lineno, None if rid is None else str(rid), f"{loc}: {first['msg']}")


def load_catalog(path: Path) -> list[Product]:
    """All valid products of a catalog (bad rows are skipped; use iter_catalog to see them)."""
    return [p for p in iter_catalog(path) if isinstance(p, Product)]


def image_path(images_dir: Path, item_id: str) -> Path:
    return Path(images_dir) / f"{item_id}.jpg"
