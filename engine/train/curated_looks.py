"""A catalog's own curated looks (a JSONL looks file or a relational CSV ``outfit_id,item_id``)
as training and evaluation data for the compatibility model: ``engine fit`` trains on them and
the evaluation's ``fit`` task measures bundles on the same held-out looks (split by look id)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from engine.catalog import Product
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.looks.format import Look
from engine.train.looks import TrainData, prepare
from engine.train.looks_vectors import compute_item_vectors


def catalog_looks(
    path: Path, products: list[Product], taxonomy: Taxonomy = DEFAULT_TAXONOMY
) -> tuple[list[Look], dict[str, int]]:
    """A catalog's looks (JSONL or a relational CSV table) with every item's slot from the
    catalog taxonomy when the file gives none; items not in the catalog or with no look slot are
    dropped, looks left with fewer than two items too. Returns (looks, counts)."""
    from engine.looks.format import LookItem, iter_looks

    by_id = {p.id: p for p in products}
    counts = {"read": 0, "bad_rows": 0, "items_not_in_catalog": 0, "items_without_slot": 0}
    looks: list[Look] = []
    for lk in iter_looks(path):
        if not isinstance(lk, Look):
            counts["bad_rows"] += 1
            continue
        counts["read"] += 1
        items = []
        for it in lk.items:
            p = by_id.get(it.item_id)
            if p is None:
                counts["items_not_in_catalog"] += 1
                continue
            slot = it.slot or taxonomy.look_slot(p)
            if slot is None:
                counts["items_without_slot"] += 1
                continue
            items.append(LookItem(it.item_id, slot))
        if len(items) >= 2:
            looks.append(Look(look_id=lk.look_id, items=items))
    counts["usable"] = len(looks)
    return looks, counts


def curated_look_data(
    products: list[Product],
    looks_path: Path,
    joint: Any,
    images_dir: Path,
    *,
    taxonomy: Taxonomy,
    document_text: Any,
    image_files: Mapping[str, Path],
    cache_dir: Path | None = None,
) -> tuple[TrainData, dict[str, int]]:
    """The looks with slots from the taxonomy, the look-eligible products' vectors (as ingest
    computes them with ``joint`` and ``document_text``) and the split by look id."""
    looks, counts = catalog_looks(looks_path, products, taxonomy)
    eligible = [p for p in products if taxonomy.look_slot(p) is not None]
    vectors = compute_item_vectors(
        eligible,
        joint,
        images_dir,
        cache_dir=cache_dir,
        document_text=document_text,
        image_files=image_files,
    )
    data = prepare(eligible, looks, vectors, split_by_look_id=True, taxonomy=taxonomy)
    return data, counts
