"""Outfit slots: which item of a look a product can be, and which slots complete a look.

The slot of a product is :func:`engine.documents.slot_for` (the one mapping, from
``article_type`` with ``sub_category`` / ``master_category`` fallbacks; it is also stored on
every product document as ``slot``). Looks are narrower than slots: a few article types that
have a slot are never proposed as part of an outfit (socks, nightwear, swimwear, shoe care):
:func:`look_slot` returns ``None`` for them.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from engine.documents import SLOTS as DOCUMENT_SLOTS
from engine.documents import slot_for as _document_slot_for

SLOTS: tuple[str, ...] = ("top", "bottom", "one-piece", "outerwear", "shoes", "bag", "accessory")
assert set(SLOTS) == set(DOCUMENT_SLOTS), "engine.documents.SLOTS and looks SLOTS diverged"

# Article types (lower case) that have a slot but never take part in a look.
NON_OUTFIT_ARTICLE_TYPES: frozenset[str] = frozenset(
    {
        "socks",
        "booties",
        "shoe accessories",
        "shoe laces",
        "nightdress",
        "night suits",
        "baby dolls",
        "robe",
        "bath robe",
        "swimwear",
        "stockings",
        "tights",
        "lounge tshirts",
        "lounge pants",
        "lounge shorts",
        "umbrellas",
        "wristbands",
        "free gifts",
    }
)

# Slots that cannot be worn together: a one-piece replaces both top and bottom.
_CONFLICTS: dict[str, frozenset[str]] = {
    "one-piece": frozenset({"top", "bottom"}),
    "top": frozenset({"one-piece"}),
    "bottom": frozenset({"one-piece"}),
}

_FIELDS = ("article_type", "sub_category", "master_category")


def _get(product: Any, name: str) -> Any:
    return product.get(name) if isinstance(product, Mapping) else getattr(product, name, None)


def slot_for(product: Any) -> str | None:
    """The slot of a product: a :class:`~engine.catalog.Product`, a product document (its
    stored ``slot`` when present) or anything with ``article_type`` / ``sub_category`` /
    ``master_category``."""
    if isinstance(product, Mapping) and product.get("slot"):
        return str(product["slot"])
    view = SimpleNamespace(**{name: _get(product, name) for name in _FIELDS})
    return _document_slot_for(view)  # type: ignore[arg-type]


def slot_for_fields(
    article_type: str | None,
    sub_category: str | None = None,
    master_category: str | None = None,
) -> str | None:
    """The slot of a product given by its category fields."""
    view = SimpleNamespace(
        article_type=article_type, sub_category=sub_category, master_category=master_category
    )
    return _document_slot_for(view)  # type: ignore[arg-type]


def look_slot(product: Any) -> str | None:
    """The slot of a product when it can be part of a look, else ``None``."""
    article = str(_get(product, "article_type") or "").strip().lower()
    if article in NON_OUTFIT_ARTICLE_TYPES:
        return None
    return slot_for(product)


def conflicts(a: str, b: str) -> bool:
    """True when slots ``a`` and ``b`` cannot both be in one look (one-piece vs top/bottom)."""
    return b in _CONFLICTS.get(a, frozenset())


def complementary_slots(slot: str | None) -> list[str]:
    """The slots that can complete a look around an item of ``slot`` (in :data:`SLOTS` order).

    Accessories complement everything, including other accessories; every other slot holds one
    item, so it is not its own complement. ``None`` (unknown slot) -> every slot.
    """
    if slot is None:
        return list(SLOTS)
    return [s for s in SLOTS if (s != slot or s == "accessory") and not conflicts(slot, s)]


def validate_slot(slot: str) -> str:
    """The canonical slot name (case-insensitive; ``onepiece``/``one piece`` accepted)."""
    s = slot.strip().lower().replace("_", "-").replace(" ", "-")
    if s == "onepiece":
        s = "one-piece"
    if s not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}; expected one of {', '.join(SLOTS)}")
    return s
