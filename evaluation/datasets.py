"""Evaluation data: any catalog in the shared format (JSONL or .jsonl.gz + a folder of <id>.jpg).

:class:`EvalDataset` wraps the products with the views evaluation tasks need: which items have
a photo, the fixed test/train split (:func:`engine.catalog.is_test_id`) and which optional
fields the catalog actually carries (``style_note``, ``rating``, ``attributes`` ...), so a task
can say "not available on this catalog" instead of crashing.
"""

from __future__ import annotations

import json
import logging
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from engine.catalog import CatalogMapping, Product, RowError, image_path, is_test_id, iter_catalog
from engine.catalog.product import local_image_files
from engine.catalog.vocabulary import is_placeholder
from engine.errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

# Optional fields whose presence decides what a task can measure.
OPTIONAL_FIELDS = (
    "brand",
    "gender",
    "master_category",
    "sub_category",
    "article_type",
    "base_colour",
    "usage",
    "price",
    "rating",
    "description",
    "style_note",
)


def known(value: str | None) -> str | None:
    """``value`` unless it is empty or a placeholder such as ``"NA"``
    (:mod:`engine.catalog.vocabulary`, the one list of them)."""
    if is_placeholder(value):
        return None
    return value


@dataclass
class EvalDataset:
    """A catalog plus its photo folder, with the split and field coverage precomputed."""

    products: list[Product]
    images_dir: Path | None = None
    catalog_path: Path | None = None
    row_errors: list[RowError] = field(default_factory=list)
    photo_ids: frozenset[str] = frozenset()
    # item id -> photo, for catalogs whose photos are not ``<id>.jpg`` (a mapping's images)
    image_files: dict[str, Path] = field(default_factory=dict)

    # ------------------------------------------------------------------ lookups
    @cached_property
    def by_id(self) -> dict[str, Product]:
        return {p.id: p for p in self.products}

    def get(self, item_id: str) -> Product:
        try:
            return self.by_id[item_id]
        except KeyError:
            raise NotFound(f"no product {item_id!r} in the evaluation catalog") from None

    def has_photo(self, item_id: str) -> bool:
        return item_id in self.photo_ids

    def image(self, item_id: str) -> Path:
        """Path of the product photo (``NotFound`` when the item has none)."""
        if self.images_dir is None or item_id not in self.photo_ids:
            raise NotFound(f"no photo for product {item_id!r}")
        return self.image_files.get(item_id) or image_path(self.images_dir, item_id)

    def __len__(self) -> int:
        return len(self.products)

    def __iter__(self) -> Iterator[Product]:
        return iter(self.products)

    # ------------------------------------------------------------------ split views
    @cached_property
    def test(self) -> list[Product]:
        """All test items (``is_test_id``), photographed or not."""
        return [p for p in self.products if is_test_id(p.id)]

    @cached_property
    def train(self) -> list[Product]:
        return [p for p in self.products if not is_test_id(p.id)]

    @cached_property
    def photographed(self) -> list[Product]:
        return [p for p in self.products if p.id in self.photo_ids]

    @cached_property
    def test_photographed(self) -> list[Product]:
        return [p for p in self.photographed if is_test_id(p.id)]

    @cached_property
    def train_photographed(self) -> list[Product]:
        return [p for p in self.photographed if not is_test_id(p.id)]

    # ------------------------------------------------------------------ field coverage
    @cached_property
    def field_counts(self) -> dict[str, int]:
        """How many products carry a known value for each optional field."""
        counts: Counter[str] = Counter()
        for p in self.products:
            for name in OPTIONAL_FIELDS:
                value = getattr(p, name)
                if isinstance(value, str):
                    value = known(value)
                if value is not None:
                    counts[name] += 1
            if p.attributes:
                counts["attributes"] += 1
        return {name: counts.get(name, 0) for name in (*OPTIONAL_FIELDS, "attributes")}

    def has_field(self, name: str, min_share: float = 0.0) -> bool:
        """True when more than ``min_share`` of the products carry ``name``."""
        n = self.field_counts.get(name, 0)
        return n > 0 and n > min_share * max(len(self.products), 1)

    def with_field(self, name: str, products: Sequence[Product] | None = None) -> list[Product]:
        """The products (default: all) that carry a known value of ``name``."""
        pool = self.products if products is None else products
        out = []
        for p in pool:
            value = (p.attributes or None) if name == "attributes" else getattr(p, name, None)
            if isinstance(value, str):
                value = known(value)
            if value is not None:
                out.append(p)
        return out

    def subset(self, products: Sequence[Product]) -> EvalDataset:
        """A dataset over some of the products (same photo folder)."""
        return EvalDataset(
            products=list(products),
            images_dir=self.images_dir,
            catalog_path=self.catalog_path,
            photo_ids=frozenset(p.id for p in products if p.id in self.photo_ids),
            image_files={p.id: f for p in products if (f := self.image_files.get(p.id))},
        )

    def counts(self) -> dict[str, Any]:
        """Item counts for reports."""
        return {
            "products": len(self.products),
            "photographed": len(self.photographed),
            "test": len(self.test),
            "train": len(self.train),
            "test_photographed": len(self.test_photographed),
            "train_photographed": len(self.train_photographed),
            "row_errors": len(self.row_errors),
            "article_types": len({p.article_type for p in self.products if p.article_type}),
            "fields": self.field_counts,
        }


def scan_photo_ids(images_dir: Path | None) -> frozenset[str]:
    """Ids that have ``<id>.jpg`` in ``images_dir`` (empty when the folder is missing)."""
    if images_dir is None:
        return frozenset()
    images_dir = Path(images_dir)
    if not images_dir.is_dir():
        logger.warning("image folder %s does not exist: no item has a photo", images_dir)
        return frozenset()
    return frozenset(p.stem for p in images_dir.iterdir() if p.suffix == ".jpg" and p.is_file())


def load_dataset(
    catalog_path: Path,
    images_dir: Path | None = None,
    max_items: int | None = None,
    photographed_only: bool = False,
    mapping: CatalogMapping | None = None,
) -> EvalDataset:
    """Load a catalog (any format a mapping reads; default our own JSONL) and index its photos:
    ``<id>.jpg`` in ``images_dir``, or the images the mapping names.

    Bad rows are kept aside in ``row_errors`` (logged once), duplicate ids keep their first
    row. ``max_items`` keeps the first N products in file order (after ``photographed_only``).
    """
    catalog_path = Path(catalog_path)
    if not catalog_path.is_file():
        raise NotFound(f"catalog file {catalog_path} does not exist")
    image_files: dict[str, Path] = {}
    if mapping is not None:
        everything = [p for p in iter_catalog(catalog_path, mapping) if isinstance(p, Product)]
        image_files = local_image_files(everything, images_dir)
        photo_ids = frozenset(image_files)
    else:
        photo_ids = scan_photo_ids(images_dir)
    products: list[Product] = []
    errors: list[RowError] = []
    seen: set[str] = set()
    for row in iter_catalog(catalog_path, mapping):
        if isinstance(row, RowError):
            errors.append(row)
            continue
        if row.id in seen:
            errors.append(RowError(0, row.id, "duplicate id (first row kept)"))
            continue
        if photographed_only and row.id not in photo_ids:
            continue
        seen.add(row.id)
        products.append(row)
        if max_items is not None and len(products) >= max_items:
            break
    if errors:
        logger.warning(
            "%d catalog rows skipped in %s (first: %s)", len(errors), catalog_path, errors[0]
        )
    if not products:
        raise InvalidInput(f"catalog {catalog_path} has no valid products")
    return EvalDataset(
        products=products,
        images_dir=Path(images_dir) if images_dir is not None else None,
        catalog_path=catalog_path,
        row_errors=errors,
        photo_ids=photo_ids & frozenset(seen),
        image_files={i: f for i, f in image_files.items() if i in seen},
    )


def dataset_from_products(
    products: Sequence[Product], images_dir: Path | None = None
) -> EvalDataset:
    """Wrap already-loaded products (e.g. ``EvalContext.catalog``)."""
    photo_ids = scan_photo_ids(images_dir) & frozenset(p.id for p in products)
    return EvalDataset(products=list(products), images_dir=images_dir, photo_ids=photo_ids)


def write_catalog(products: Sequence[Product | dict[str, Any]], path: Path) -> None:
    """Write products as a JSONL catalog (for tests and derived evaluation catalogs). Atomic
    (a temporary file renamed): a process still reading the old file keeps reading it whole."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with tmp.open("w", encoding="utf-8") as fh:
        for p in products:
            row = p.model_dump(exclude_none=True) if isinstance(p, Product) else p
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
