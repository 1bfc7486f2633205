"""engine.documents: the pure product -> document mapping."""

from __future__ import annotations

import numpy as np
import pytest

from engine.catalog import Product
from engine.documents import (
    PLAIN_FIELDS,
    attr_prob_field,
    attr_prob_object,
    attribute_text,
    binary_code_value,
    business_fields,
    content_hash,
    default_joint_embedding,
    discount_pct,
    joint_embeddings,
    plain_fields,
    predicted_category,
    product_to_document,
    slot_for,
    slug,
)


def _product(**kw: object) -> Product:
    base: dict[str, object] = {
        "id": "42",
        "title": "Roadster Men Navy Blue Slim Fit Shirt",
        "brand": "Roadster",
        "gender": "Men",
        "master_category": "Apparel",
        "sub_category": "Topwear",
        "article_type": "Shirts",
        "base_colour": "Navy Blue",
        "colour1": "White",
        "price": 1000,
        "discounted_price": 750,
        "attributes": {"Pattern": "Striped", "Fit": "Slim Fit", "Sleeve.Length": "Long"},
    }
    base.update(kw)
    return Product.model_validate(base)


def _unit(seed: int, dim: int = 256) -> np.ndarray:
    v = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return v / np.linalg.norm(v)


def test_slug_and_attr_prob_field() -> None:
    assert slug("Sleeve Length") == "sleeve_length"
    assert slug("Navy-Blue ") == "navy_blue"
    assert slug("Café Crème") == "cafe_creme"
    assert slug("!!!") == "_"
    assert attr_prob_field("Base Colour", "Navy Blue") == "attr_prob.base_colour.navy_blue"


@pytest.mark.parametrize(
    ("sub", "article", "master", "slot"),
    [
        ("Topwear", "Tshirts", "Apparel", "top"),
        ("Topwear", "Jackets", "Apparel", "outerwear"),
        ("Topwear", "Blazers", "Apparel", "outerwear"),
        ("Bottomwear", "Jeans", "Apparel", "bottom"),
        ("Dress", "Dresses", "Apparel", "one-piece"),
        ("Saree", "Sarees", "Apparel", "one-piece"),
        ("Shoes", "Casual Shoes", "Footwear", "shoes"),
        ("Flip Flops", "Flip Flops", "Footwear", "shoes"),
        ("Bags", "Handbags", "Accessories", "bag"),
        ("Bags", "Wallets", "Accessories", "accessory"),
        ("Watches", "Watches", "Accessories", "accessory"),
        ("Eyewear", "Sunglasses", "Accessories", "accessory"),
        ("Loungewear and Nightwear", "Lounge Pants", "Apparel", "bottom"),
        ("Innerwear", "Briefs", "Apparel", None),
        ("Fragrance", "Deodorant", "Personal Care", None),
        (None, None, "Footwear", "shoes"),
        (None, None, None, None),
    ],
)
def test_slot_for(
    sub: str | None, article: str | None, master: str | None, slot: str | None
) -> None:
    p = _product(sub_category=sub, article_type=article, master_category=master)
    assert slot_for(p) == slot


def test_slot_for_is_case_insensitive() -> None:
    assert slot_for(_product(sub_category="TOPWEAR", article_type="JACKETS")) == "outerwear"


def test_attribute_text_sorted_and_dots_removed() -> None:
    assert attribute_text(_product()) == "Fit: Slim Fit; Pattern: Striped; Sleeve Length: Long"
    assert attribute_text(_product(attributes={})) == ""


def test_discount_and_business_fields() -> None:
    assert discount_pct(1000, 750) == 25.0
    assert discount_pct(1000, None) is None
    assert discount_pct(0, 0) is None
    assert discount_pct(100, 120) == 0.0  # never negative
    assert business_fields({"price": 200, "discounted_price": 150, "title": "x"}) == {
        "price": 200,
        "discounted_price": 150,
        "discount_pct": 25.0,
    }
    assert business_fields({"in_stock": False}) == {"in_stock": False}


def test_plain_fields_omit_missing_values() -> None:
    doc = plain_fields(_product(description=None, season=""), ["a.jpg"])
    assert "description" not in doc and "season" not in doc
    assert doc["colours"] == ["Navy Blue", "White"]
    assert doc["slot"] == "top"
    assert doc["attributes"]["Sleeve Length"] == "Long"
    assert doc["discount_pct"] == 25.0
    assert doc["source_image_urls"] == ["a.jpg"]
    assert set(doc) <= set(PLAIN_FIELDS)


def test_document_with_images() -> None:
    text, img1, img2 = _unit(1), _unit(2), _unit(3)
    probs = {
        "article_type": {"Shirts": 0.8, "Tshirts": 0.15, "Tops": 0.04, "Kurtas": 0.01},
        "Base Colour": {"Navy Blue": 0.7, "Blue": 0.3},
    }
    code = np.packbits(text > 0)
    doc = product_to_document(
        _product(),
        text_embedding=text,
        image_embeddings=[img1, img2],
        image_urls=["p.jpg", "s.jpg"],
        image_sha1s=["aa", "bb"],
        attribute_probabilities=probs,
        binary_code=code,
        content_hash="h",
        model_version="m1",
    )
    assert doc["id"] == "42"
    assert np.allclose(doc["image_embedding"], img1, rtol=0, atol=6e-7)
    assert np.allclose(doc["text_embedding"], text, rtol=0, atol=6e-7)
    joint = np.asarray(doc["joint_embedding"])
    assert np.isclose(np.linalg.norm(joint), 1.0, atol=1e-5)
    assert np.allclose(joint, default_joint_embedding(text, img1), atol=1e-6)
    assert [i["url"] for i in doc["images"]] == ["p.jpg", "s.jpg"]
    assert np.allclose(doc["images"][1]["embedding"], img2, rtol=0, atol=6e-7)
    assert doc["image_sha1"] == "aa"
    assert doc["attr_prob"] == {
        "article_type": {"shirts": 0.8, "tshirts": 0.15, "tops": 0.04},
        "base_colour": {"navy_blue": 0.7, "blue": 0.3},
    }
    assert doc["predicted_category"] == "Shirts"
    assert doc["predicted_category_confidence"] == 0.8
    assert len(doc["binary_code"]) == 32
    assert all(-128 <= b <= 127 for b in doc["binary_code"])
    assert doc["content_hash"] == "h" and doc["model_version"] == "m1"


def test_text_only_document_has_no_image_fields() -> None:
    text = _unit(4)
    doc = product_to_document(_product(), text_embedding=text)
    for absent in ("image_embedding", "images", "image_sha1", "source_image_urls", "binary_code"):
        assert absent not in doc
    assert np.allclose(doc["joint_embedding"], text, atol=1e-6)


def test_all_image_urls_override_and_alignment_check() -> None:
    doc = product_to_document(
        _product(),
        text_embedding=_unit(1),
        image_embeddings=[_unit(2)],
        image_urls=["p.jpg"],
        all_image_urls=["p.jpg", "broken.jpg"],
    )
    assert doc["source_image_urls"] == ["p.jpg", "broken.jpg"]
    assert len(doc["images"]) == 1
    with pytest.raises(ValueError):
        product_to_document(_product(), text_embedding=_unit(1), image_embeddings=[_unit(2)])


def test_binary_code_value_is_twos_complement() -> None:
    assert binary_code_value(np.array([0, 1, 127, 128, 255], dtype=np.uint8)) == [
        0,
        1,
        127,
        -128,
        -1,
    ]


def test_attr_prob_slug_collisions_keep_max() -> None:
    out = attr_prob_object({"colour": {"Navy Blue": 0.2, "navy-blue": 0.5, "Red": 0.3}}, top_k=3)
    assert out == {"colour": {"navy_blue": 0.5, "red": 0.3}}
    assert predicted_category({}) == (None, None)


def test_content_hash_tracks_text_images_and_model() -> None:
    h = content_hash("t", ["a"], "m1")
    assert h == content_hash("t", ["a"], "m1")
    assert h != content_hash("t2", ["a"], "m1")
    assert h != content_hash("t", ["b"], "m1")
    assert h != content_hash("t", ["a", "b"], "m1")
    assert h != content_hash("t", ["a"], "m2")


def test_joint_embeddings_rowwise() -> None:
    text = np.stack([_unit(1), _unit(2)])
    image = np.stack([_unit(3), np.zeros(256, np.float32)])
    out = joint_embeddings(text, image, np.array([True, False]))
    assert np.allclose(out[0], default_joint_embedding(text[0], image[0]), atol=1e-6)
    assert np.allclose(out[1], text[1], atol=1e-6)


def test_stored_vectors_are_short_decimals() -> None:
    """Vectors are stored with 6 decimals: half the _source text, cosine unchanged."""
    from engine.documents import VECTOR_DECIMALS, _vector

    v = np.random.default_rng(1).normal(size=256).astype(np.float32)
    v /= np.linalg.norm(v)
    stored = _vector(v)
    assert VECTOR_DECIMALS == 6
    assert np.abs(np.asarray(stored) - v).max() <= 5e-7 + 1e-9
    assert all(len(repr(x)) <= 9 for x in stored)  # e.g. "-0.123457"
    cos = float(np.dot(stored, v) / np.linalg.norm(stored))
    assert abs(cos - 1.0) < 1e-6
