"""Pure mapping from a catalog :class:`~engine.catalog.Product` (plus model outputs) to the
OpenSearch product document (``plugin_config/index_templates/products.json``).

No I/O and no model here: ingest computes embeddings, attribute probabilities and codes and
passes them in. ``plain_fields`` is the part of a document that depends on the catalog row only
(what a partial update may rewrite without re-encoding); ``product_to_document`` adds the model
part (vectors, attribute probabilities, predicted category, binary code, hashes).
"""

from __future__ import annotations

import hashlib
import json
import re
import unicodedata
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from engine.catalog import Product
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.catalog.taxonomy import SLOTS as TAXONOMY_SLOTS

DOC_FORMAT_VERSION = 1

# Document fields holding vectors (excluded when only scalar fields are needed).
VECTOR_FIELDS = ("image_embedding", "text_embedding", "joint_embedding", "binary_code", "images")

# Fields a business update may change (``python -m ingest update``); discount_pct is derived.
BUSINESS_FIELDS = ("price", "discounted_price", "rating", "in_stock", "sales", "clicks")

# Document fields that come from the catalog row alone (see plain_fields).
PLAIN_FIELDS = (
    "id",
    "title",
    "description",
    "style_note",
    "attribute_text",
    "brand",
    "gender",
    "age_group",
    "master_category",
    "sub_category",
    "article_type",
    "base_colour",
    "colours",
    "season",
    "usage",
    "year",
    "slot",
    "look_slot",
    "attributes",
    "price",
    "discounted_price",
    "discount_pct",
    "rating",
    "sales",
    "clicks",
    "in_stock",
    "added_at",
    "source_image_urls",
)

# The outfit slots and the slot of a product live in the catalog taxonomy (one place for every
# catalog: keyword rules over the product's own type and category names, see
# engine.catalog.taxonomy); re-exported here for callers of the document mapping.
SLOTS = TAXONOMY_SLOTS


def slug(s: str) -> str:
    """Lower-case ASCII identifier: 'Sleeve Length' -> 'sleeve_length', 'Navy-Blue' -> 'navy_blue'."""
    text = unicodedata.normalize("NFKD", str(s)).encode("ascii", "ignore").decode("ascii")
    text = re.sub(r"[^a-z0-9]+", "_", text.lower()).strip("_")
    return text or "_"


def attr_prob_field(attr: str, value: str) -> str:
    """The document field holding P(attr = value): ``attr_prob.<slug(attr)>.<slug(value)>``."""
    return f"attr_prob.{slug(attr)}.{slug(value)}"


def slot_for(product: Product, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> str | None:
    """The outfit slot of a product (see :data:`SLOTS`), or None (innerwear, beauty, ...)."""
    return taxonomy.slot_for(product)


def look_slot(product: Product, taxonomy: Taxonomy = DEFAULT_TAXONOMY) -> str | None:
    """The slot when the product can be part of a look (socks, swimwear ... never are)."""
    return taxonomy.look_slot(product)


def _attribute_key(name: str) -> str:
    # A dot would turn the key into an object path (and clash with a sibling keyword field).
    return " ".join(str(name).replace(".", " ").split())


def clean_attributes(attributes: Mapping[str, str]) -> dict[str, str]:
    """Attribute names safe as field names (no dots, single spaces); empty values dropped."""
    out: dict[str, str] = {}
    for k, v in attributes.items():
        key = _attribute_key(k)
        val = str(v).strip()
        if key and val:
            out[key] = val
    return out


def attribute_text(product: Product) -> str:
    """'Fit: Regular; Pattern: Striped' (attribute names sorted), empty when none."""
    attrs = clean_attributes(product.attributes)
    return "; ".join(f"{k}: {attrs[k]}" for k in sorted(attrs))


def discount_pct(price: float | None, discounted_price: float | None) -> float | None:
    """Percentage off the list price (0..100, one decimal), None when unknown."""
    if price is None or discounted_price is None or price <= 0:
        return None
    return round(max(0.0, min(100.0, 100.0 * (price - discounted_price) / price)), 1)


def business_fields(values: Mapping[str, Any]) -> dict[str, Any]:
    """The business fields present in ``values`` plus the derived ``discount_pct``."""
    out = {k: values[k] for k in BUSINESS_FIELDS if k in values}
    if "price" in out or "discounted_price" in out:
        out["discount_pct"] = discount_pct(values.get("price"), values.get("discounted_price"))
    return out


def plain_fields(
    product: Product, image_urls: Sequence[str] = (), taxonomy: Taxonomy = DEFAULT_TAXONOMY
) -> dict[str, Any]:
    """Document fields that come from the catalog row alone (None values omitted); slots from
    the retailer's ``taxonomy`` (its mapping file's rules; default: the English keywords)."""
    slot = taxonomy.slot_for(product)
    doc: dict[str, Any] = {
        "id": product.id,
        "title": product.title,
        "description": product.description,
        "style_note": product.style_note,
        "attribute_text": attribute_text(product) or None,
        "brand": product.brand,
        "gender": product.gender,
        "age_group": product.age_group,
        "master_category": product.master_category,
        "sub_category": product.sub_category,
        "article_type": product.article_type,
        "base_colour": product.base_colour,
        "colours": product.colours or None,
        "season": product.season,
        "usage": product.usage,
        "year": product.year,
        "slot": slot,
        "look_slot": slot if slot and taxonomy.in_looks(product.article_type) else None,
        "attributes": clean_attributes(product.attributes) or None,
        "price": product.price,
        "discounted_price": product.discounted_price,
        "discount_pct": discount_pct(product.price, product.discounted_price),
        "rating": product.rating,
        "sales": product.sales,
        "clicks": product.clicks,
        "in_stock": product.in_stock,
        "added_at": product.added_at,
        "source_image_urls": list(image_urls) or None,
    }
    return {k: v for k, v in doc.items() if v is not None}


# Stored vectors keep 6 decimals: float32 text ("0.05808041989803314") is twice the size of
# "0.05808" in _source, and every fetch parses it (measured on 8,000 catalog documents: _source
# 25.1 -> 13.4 KB, store 165 -> 101 MB, a filtered k-NN returning 100 documents 54 -> 38 ms).
# Unit vectors rounded to 1e-6 change cosine similarities by ~1e-6.
VECTOR_DECIMALS = 6


def _vector(v: np.ndarray | Sequence[float]) -> list[float]:
    arr = np.round(np.asarray(v, dtype=np.float32).astype(np.float64).reshape(-1), VECTOR_DECIMALS)
    out: list[float] = arr.tolist()
    return out


def binary_code_value(code: np.ndarray | Sequence[int]) -> list[int]:
    """Packed uint8 bits -> the signed int8 list a binary knn_vector expects."""
    arr = np.asarray(code, dtype=np.uint8).reshape(-1)
    return [int(x) for x in arr.view(np.int8)]


def attr_prob_object(
    probabilities: Mapping[str, Mapping[str, float]], top_k: int = 3
) -> dict[str, dict[str, float]]:
    """{attr: {value: p}} -> {slug(attr): {slug(value): p}} keeping the ``top_k`` values."""
    out: dict[str, dict[str, float]] = {}
    for attr, values in probabilities.items():
        best = sorted(values.items(), key=lambda kv: -kv[1])[:top_k]
        slot: dict[str, float] = {}
        for value, p in best:
            key = slug(value)
            slot[key] = round(max(slot.get(key, 0.0), float(p)), 4)
        if slot:
            out[slug(attr)] = slot
    return out


def predicted_category(
    probabilities: Mapping[str, Mapping[str, float]], attribute: str = "article_type"
) -> tuple[str | None, float | None]:
    """The most probable value of ``attribute`` and its probability (None when not predicted)."""
    values = probabilities.get(attribute)
    if not values:
        return None, None
    value, p = max(values.items(), key=lambda kv: kv[1])
    return value, round(float(p), 4)


def content_hash(text: str, image_sha1s: Sequence[str], model_version: str) -> str:
    """Hash of everything the vectors depend on: model text, image bytes, model version."""
    payload = json.dumps(
        {
            "v": DOC_FORMAT_VERSION,
            "text": text,
            "images": list(image_sha1s),
            "model": model_version,
        },
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha1(payload.encode("utf-8")).hexdigest()


def product_to_document(
    product: Product,
    *,
    text_embedding: np.ndarray | Sequence[float],
    image_embeddings: Sequence[np.ndarray | Sequence[float]] = (),
    image_urls: Sequence[str] = (),
    image_sha1s: Sequence[str] = (),
    all_image_urls: Sequence[str] | None = None,
    joint_embedding: np.ndarray | Sequence[float] | None = None,
    attribute_probabilities: Mapping[str, Mapping[str, float]] | None = None,
    binary_code: np.ndarray | Sequence[int] | None = None,
    content_hash: str | None = None,
    model_version: str | None = None,
    attr_top_k: int = 3,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
) -> dict[str, Any]:
    """The full product document.

    ``image_embeddings`` / ``image_urls`` / ``image_sha1s`` are per image, the first being the
    primary photo (``image_embedding``, ``image_sha1``); with no image the image fields are
    absent (a text-only document). ``all_image_urls`` is the product's full image list for the
    ``source_image_urls`` field (default ``image_urls``; it differs when an extra image was unusable). ``joint_embedding`` defaults to the text embedding when
    there is no image, else the normalised sum of the primary image and text embeddings.
    """
    if len(image_embeddings) != len(image_urls) or (
        image_sha1s and len(image_sha1s) != len(image_urls)
    ):
        raise ValueError("image_embeddings, image_urls and image_sha1s must align")
    doc = plain_fields(product, image_urls if all_image_urls is None else all_image_urls, taxonomy)
    text_vec = np.asarray(text_embedding, dtype=np.float32).reshape(-1)
    doc["text_embedding"] = _vector(text_vec)
    if image_embeddings:
        primary = np.asarray(image_embeddings[0], dtype=np.float32).reshape(-1)
        doc["image_embedding"] = _vector(primary)
        doc["images"] = [
            {"url": url, "embedding": _vector(emb)}
            for url, emb in zip(image_urls, image_embeddings, strict=True)
        ]
        if image_sha1s:
            doc["image_sha1"] = image_sha1s[0]
    if joint_embedding is None:
        joint_embedding = default_joint_embedding(
            text_vec, image_embeddings[0] if image_embeddings else None
        )
    doc["joint_embedding"] = _vector(joint_embedding)
    if attribute_probabilities:
        doc["attr_prob"] = attr_prob_object(attribute_probabilities, attr_top_k)
        category, confidence = predicted_category(attribute_probabilities)
        if category is not None:
            doc["predicted_category"] = category
            doc["predicted_category_confidence"] = confidence
    if binary_code is not None:
        doc["binary_code"] = binary_code_value(binary_code)
    if content_hash is not None:
        doc["content_hash"] = content_hash
    if model_version is not None:
        doc["model_version"] = model_version
    return doc


def default_joint_embedding(
    text_embedding: np.ndarray | Sequence[float],
    image_embedding: np.ndarray | Sequence[float] | None,
) -> np.ndarray:
    """Normalised ``image + text`` (text alone when there is no image)."""
    t = np.asarray(text_embedding, dtype=np.float32).reshape(-1)
    v = t if image_embedding is None else t + np.asarray(image_embedding, np.float32).reshape(-1)
    n = float(np.linalg.norm(v))
    return (v / n).astype(np.float32) if n > 0 else v.astype(np.float32)


def joint_embeddings(text: np.ndarray, image: np.ndarray, has_image: np.ndarray) -> np.ndarray:
    """Row-wise :func:`default_joint_embedding` for (N, d) arrays; ``has_image`` (N,) bool."""
    t = np.asarray(text, dtype=np.float32)
    v = t + np.where(np.asarray(has_image, bool)[:, None], np.asarray(image, np.float32), 0.0)
    n = np.linalg.norm(v, axis=1, keepdims=True)
    return (v / np.where(n > 0, n, 1.0)).astype(np.float32)
