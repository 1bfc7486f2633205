"""Pure builders of the request bodies complete-the-look sends (no I/O, no models).

Product k-NN with efficient (Lucene) filtering over the products index, and nested k-NN over the
items of the looks index (``plugin_config/index_templates/looks.json``). Product search bodies
are :mod:`engine.queries`; the clauses both use (price range, excluded ids) come from
:mod:`engine.query_filters`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from engine.query_filters import ids_clause, range_clause

JSON = dict[str, Any]

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
    "source_image_urls",
    "image_urls",
    "model_version",
    "joint_embedding",
]


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
    price = range_clause("price", min_price, max_price)
    if price is not None:
        must.append(price)
    if in_stock:
        must.append({"term": {"in_stock": True}})
    if brands:
        must.append({"terms": {"brand": list(brands)}})
    if exclude_ids:
        must_not.append(ids_clause(exclude_ids))
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
        must_not.append(ids_clause(exclude_look_ids))
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
