"""Pure builders for the looks index (``plugin_config/index_templates/looks.json``) and the
queries complete-the-look sends to OpenSearch. No I/O here: callers use
:class:`engine.backend.Backend`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from engine.looks.format import Look
from engine.looks.slots import slot_for

JSON = dict[str, Any]

# Vector fields of a product document, in the order an item vector is taken from.
VECTOR_PREFERENCE = ("joint_embedding", "image_embedding", "text_embedding")
# Product fields the look-based and learned retrieval need (vectors included).
PRODUCT_SOURCE = [
    "id",
    "title",
    "brand",
    "gender",
    "age_group",
    "article_type",
    "sub_category",
    "master_category",
    "base_colour",
    "usage",
    "season",
    "slot",
    "price",
    "discounted_price",
    "in_stock",
    "image_urls",
    "model_version",
    "joint_embedding",
]
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


# --------------------------------------------------------------------------- queries


def product_filters(
    *,
    slot: str | None = None,
    genders: Sequence[str] | None = None,
    min_price: float | None = None,
    max_price: float | None = None,
    in_stock: bool | None = None,
    brands: Sequence[str] | None = None,
    exclude_ids: Sequence[str] = (),
    exclude_article_types: Sequence[str] = (),
    look_slots_only: bool = False,
) -> JSON:
    """A bool filter over product documents; ``look_slots_only``: the slot as a part of a look
    (the stored ``look_slot``: no socks, nightwear ... whatever the catalog calls them)."""
    must: list[JSON] = []
    must_not: list[JSON] = []
    if slot:
        must.append({"term": {"look_slot" if look_slots_only else "slot": slot}})
    if genders:
        must.append({"terms": {"gender": list(genders)}})
    if min_price is not None or max_price is not None:
        rng: JSON = {}
        if min_price is not None:
            rng["gte"] = min_price
        if max_price is not None:
            rng["lte"] = max_price
        must.append({"range": {"price": rng}})
    if in_stock:
        must.append({"term": {"in_stock": True}})
    if brands:
        must.append({"terms": {"brand": list(brands)}})
    if exclude_ids:
        must_not.append({"ids": {"values": list(exclude_ids)}})
    if exclude_article_types:
        must_not.append({"terms": {"article_type": list(exclude_article_types)}})
    out: JSON = {"bool": {"filter": must or [{"match_all": {}}]}}
    if must_not:
        out["bool"]["must_not"] = must_not
    return out


def knn_products_query(
    vector: Sequence[float] | np.ndarray, k: int, filter_: JSON, field: str = "joint_embedding"
) -> JSON:
    """k-NN over product vectors with efficient (Lucene) filtering; returns vectors too."""
    return {
        "size": k,
        "_source": PRODUCT_SOURCE,
        "query": {
            "knn": {field: {"vector": [float(x) for x in vector], "k": k, "filter": filter_}}
        },
    }


def similar_look_items_query(
    vector: Sequence[float] | np.ndarray,
    slot: str | None,
    k: int,
    *,
    gender: Sequence[str] | None = None,
    exclude_look_ids: Sequence[str] = (),
) -> JSON:
    """Looks holding an item close to ``vector`` (of ``slot``): nested k-NN on items.embedding,
    the best matching item of each look returned as an inner hit."""
    knn: JSON = {"vector": [float(x) for x in vector], "k": k}
    if slot:
        knn["filter"] = {"term": {"items.slot": slot}}
    query: JSON = {
        "nested": {
            "path": "items",
            "score_mode": "max",
            "query": {"knn": {"items.embedding": knn}},
            "inner_hits": {"size": 1, "_source": ["items.item_id", "items.slot"]},
        }
    }
    filters: list[JSON] = []
    if gender:
        filters.append(
            {
                "bool": {
                    "should": [
                        {"terms": {"gender": list(gender)}},
                        {"bool": {"must_not": {"exists": {"field": "gender"}}}},
                    ]
                }
            }
        )
    must_not: list[JSON] = []
    if exclude_look_ids:
        must_not.append({"ids": {"values": list(exclude_look_ids)}})
    if filters or must_not:
        query = {"bool": {"must": [query], "filter": filters, "must_not": must_not}}
    return {"size": k, "_source": {"excludes": ["items.embedding"]}, "query": query}


def looks_with_item_query(item_id: str, size: int) -> JSON:
    """Looks that contain the exact item."""
    return {
        "size": size,
        "_source": {"excludes": ["items.embedding"]},
        "query": {"term": {"item_ids": item_id}},
    }
