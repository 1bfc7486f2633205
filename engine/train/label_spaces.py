"""Which label spaces a catalog has: the attributes ``engine fit`` learns heads for.

A field (type, colour, gender, category levels, the retailer's own exact colour) or an attribute
column gets a head when it is on at least 10% of the products, has at most 300 distinct values
and at least two values seen 5+ times; everything else is skipped with a note, never a crash.
"""

from __future__ import annotations

from collections import Counter

from engine.catalog import CatalogMapping, Product

# Our fields that can carry a label space, in report order.
LABEL_FIELDS: tuple[str, ...] = (
    "article_type",
    "base_colour",
    "gender",
    "usage",
    "sub_category",
    "master_category",
    "age_group",
    "season",
    "colour1",
)
MIN_VALUE_COUNT = 5  # a label space needs two values with this many examples
MAX_LABELS = 300  # more distinct values than this is an identifier, not a label space
MIN_LABELLED_SHARE = 0.1  # attributes present on fewer products are skipped


def attribute_fields(
    products: list[Product], mapping: CatalogMapping
) -> tuple[dict[str, str], list[str]]:
    """The attributes to learn (name -> product field) and notes on the ones skipped."""
    from engine.documents import slug

    notes: list[str] = []
    candidates: dict[str, str] = {name: name for name in LABEL_FIELDS}
    attr_counts: Counter[str] = Counter()
    for p in products:
        attr_counts.update(p.attributes.keys())
    for name in sorted(set(mapping.attribute_columns) | set(attr_counts)):
        key = slug(name)
        if key not in candidates:
            candidates[key] = f"attributes.{name}"
    fields: dict[str, str] = {}
    rare: list[str] = []
    n = max(1, len(products))
    for name, fld in candidates.items():
        if fld.startswith("attributes."):
            attr = fld.split(".", 1)[1]
            values = [p.attributes.get(attr) for p in products]
        else:
            values = [getattr(p, fld) for p in products]
        present = [v for v in values if v]
        distinct = len(set(present))
        if not present:
            notes.append(f"{name}: empty in this catalog, no head")
            continue
        if len(present) / n < MIN_LABELLED_SHARE:
            rare.append(name)
            continue
        frequent = sum(1 for c in Counter(present).values() if c >= MIN_VALUE_COUNT)
        if distinct < 2 or distinct > MAX_LABELS or frequent < 2:
            notes.append(
                f"{name}: {distinct} distinct values ({frequent} seen {MIN_VALUE_COUNT}+ times),"
                " no head"
            )
            continue
        fields[name] = fld
    if rare:
        notes.append(
            f"{len(rare)} attribute(s) on fewer than {MIN_LABELLED_SHARE:.0%} of products, no "
            f"head: {', '.join(rare[:12])}{' ...' if len(rare) > 12 else ''}"
        )
    return fields, notes
