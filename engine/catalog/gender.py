"""Gender compatibility: does an item suit the gender a query or a look asks for?

One rule for relevance judgments (:mod:`evaluation.queries`), simulated clicks
(:mod:`engine.train.datagen.clicks`) and mined looks (:mod:`engine.train.datagen.looks_mining`):
genders compare case-insensitively, placeholders (:mod:`engine.catalog.vocabulary`) are unknown,
no wanted gender accepts every item, and a ``Unisex`` item also serves the genders of
``unisex_serves``. What differs between callers is said by the arguments, not by copies.
"""

from __future__ import annotations

from engine.catalog.vocabulary import is_placeholder

UNISEX = "unisex"
# A unisex item answers a men's or women's search (judgments, simulated shoppers) ...
UNISEX_SERVES: frozenset[str] = frozenset({"men", "women"})
# ... and completes a men's, women's or boys' look (girls' looks keep girls' items).
UNISEX_SERVES_LOOKS: frozenset[str] = frozenset({"men", "women", "boys"})


def norm_gender(value: str | None) -> str | None:
    """Lower-case and stripped; None when missing or a placeholder."""
    if value is None or is_placeholder(value):
        return None
    return value.strip().lower()


def gender_ok(
    wanted: str | None,
    item: str | None,
    *,
    unknown_item_ok: bool = False,
    unisex_serves: frozenset[str] = UNISEX_SERVES,
) -> bool:
    """True when an item of gender ``item`` suits ``wanted`` (None: any gender).

    An item of unknown gender suits only when ``unknown_item_ok`` (looks: the stylist's pick may
    lack the field; judgments and shoppers: an unknown gender is no match)."""
    w = norm_gender(wanted)
    if w is None:
        return True
    i = norm_gender(item)
    if i is None:
        return unknown_item_ok
    return i == w or (i == UNISEX and w in unisex_serves)
