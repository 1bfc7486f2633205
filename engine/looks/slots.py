"""Outfit slots for complete the look: a thin view of :mod:`engine.catalog.taxonomy`.

The slot of a product comes from the catalog taxonomy (keyword rules over the product's own
type and category names, overridable per retailer) and is stored on every product document as
``slot``; ``look_slot`` (also stored) is the slot when the product can be part of a look, e.g.
not socks, nightwear or swimwear.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from engine.catalog.taxonomy import (
    DEFAULT_TAXONOMY,
    SLOTS,
    Taxonomy,
    canonical_slot,
    complementary_slots,
    conflicts,
)

__all__ = [
    "SLOTS",
    "complementary_slots",
    "conflicts",
    "look_slot",
    "slot_for",
    "slot_for_fields",
    "validate_slot",
]


def slot_for(product: Any, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> str | None:
    """The slot of a product: a :class:`~engine.catalog.Product`, a product document (its
    stored ``slot`` when present) or anything with ``article_type`` / ``sub_category`` /
    ``master_category``."""
    if isinstance(product, Mapping) and product.get("slot"):
        return str(product["slot"])
    return taxonomy.slot_for(product)


def slot_for_fields(
    article_type: str | None,
    sub_category: str | None = None,
    master_category: str | None = None,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
) -> str | None:
    """The slot of a product given by its category fields."""
    return taxonomy.slot_for_fields(article_type, sub_category, master_category)


def look_slot(product: Any, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> str | None:
    """The slot of a product when it can be part of a look, else ``None`` (a product document's
    stored ``look_slot`` when it has one)."""
    if isinstance(product, Mapping) and "look_slot" in product:
        value = product.get("look_slot")
        return str(value) if value else None
    return taxonomy.look_slot(product)


def validate_slot(slot: str) -> str:
    """The canonical slot name (case-insensitive; ``onepiece``/``one piece`` accepted)."""
    try:
        s = canonical_slot(slot)
    except ValueError:
        s = None
    if s is None:
        raise ValueError(f"unknown slot {slot!r}; expected one of {', '.join(SLOTS)}")
    return s
