"""Documents of the looks index (``plugin_config/index_templates/looks.json``): what ingest
writes and what the API returns. The queries complete-the-look sends are built by the pure
:mod:`engine.look_queries`; cluster I/O is :class:`engine.backend.Backend`'s.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from engine.looks.format import Look
from engine.looks.slots import slot_for

JSON = dict[str, Any]

# Vector fields of a product document, in the order an item vector is taken from.
VECTOR_PREFERENCE = ("joint_embedding", "image_embedding", "text_embedding")
# Heavy product fields never needed to build a look document.
PRODUCT_EXCLUDES = ["images", "attr_prob", "binary_code", "description", "style_note"]
# ... nor to rank a candidate (its joint vector is enough).
CANDIDATE_EXCLUDES = [*PRODUCT_EXCLUDES, "image_embedding", "text_embedding", "attributes"]


def item_vector(doc: Mapping[str, Any]) -> list[float] | None:
    """The vector representing a product in looks: joint, else image, else text embedding."""
    for name in VECTOR_PREFERENCE:
        vec = doc.get(name)
        if isinstance(vec, list) and vec:
            return [float(x) for x in vec]
    return None


def look_document(look: Look, products: Mapping[str, Mapping[str, Any]]) -> JSON:
    """The looks-index document of ``look``; ``products`` maps item ids to product documents.

    Items missing from ``products`` are left out (callers report them); an item's slot is the
    one given in the look, else the product's."""
    items: list[JSON] = []
    for it in look.items:
        doc = products.get(it.item_id)
        if doc is None:
            continue
        entry: JSON = {"item_id": it.item_id, "slot": it.slot or slot_for(doc)}
        for name in ("article_type", "base_colour"):
            if doc.get(name):
                entry[name] = doc[name]
        vec = item_vector(doc)
        if vec is not None:
            entry["embedding"] = vec
        items.append(entry)
    out: JSON = {
        "look_id": look.look_id,
        "item_ids": [i["item_id"] for i in items],
        "slots": sorted({i["slot"] for i in items if i.get("slot")}),
        "items": items,
    }
    for name in ("source", "occasion", "season", "gender", "scene_image_url"):
        value = getattr(look, name)
        if value is not None:
            out[name] = value
    return out


def look_actions(index: str, docs: Iterable[Mapping[str, Any]]) -> list[JSON]:
    """Bulk index actions (id = look_id)."""
    return [{"_index": index, "_id": d["look_id"], "_source": dict(d)} for d in docs]


def public_look(doc: Mapping[str, Any]) -> JSON:
    """A look document without vectors (what the API returns)."""
    out = {k: v for k, v in doc.items() if k != "items"}
    out["items"] = [
        {k: v for k, v in it.items() if k != "embedding"} for it in doc.get("items", [])
    ]
    return out
