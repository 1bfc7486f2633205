"""Outfit slots from any catalog's own names (engine.catalog.taxonomy)."""

from __future__ import annotations

import pytest

from engine.catalog import Product
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy, canonical_slot, singular, words


@pytest.mark.parametrize(
    ("name", "slot"),
    [
        ("T-Shirts", "top"),
        ("tshirt", "top"),
        ("Blouse", "top"),
        ("Jeans", "bottom"),
        ("Bermudas", "bottom"),
        ("Shirt Dress", "one-piece"),  # the head noun is last
        ("Dress Shirt", "top"),
        ("Kurta Sets", "one-piece"),
        ("Puffer coat", "outerwear"),
        ("Trenchcoat", None),  # one word the rules do not know: no slot from the type alone
        ("Ankle Boots", "shoes"),
        ("Flip Flops", "shoes"),
        ("Crossbody bag", "bag"),
        ("Shoe bag", "bag"),
        ("Earrings", "accessory"),
        ("Sunglasses", "accessory"),
        ("Bras", None),
        ("Lipstick", None),
        ("Cushion Case", None),
    ],
)
def test_keyword_rules(name: str, slot: str | None) -> None:
    assert DEFAULT_TAXONOMY.slot_for_fields(name) == slot


def test_category_levels_are_the_fallback() -> None:
    p = Product(id="1", title="x", article_type="Trenchcoat", master_category="Outerwear")
    assert DEFAULT_TAXONOMY.slot_for(p) == "outerwear"
    # the type decides when it matches, whatever the category says
    q = Product(id="2", title="x", article_type="Belt", master_category="Bottoms")
    assert DEFAULT_TAXONOMY.slot_for(q) == "accessory"


def test_plurals_and_case_fold_alike() -> None:
    assert singular("accessories") == singular("accessory")
    assert singular("booties") == singular("bootie")
    assert singular("dresses") == "dress"
    assert words("T-SHIRTS") == ("t", "shirt")


def test_overrides_from_a_mapping() -> None:
    t = Taxonomy.from_config(
        slots={"Camisoles": "none", "Kimono": "outerwear"},
        keywords={"bag": ["pochette"]},
        not_in_looks=["belt"],
        in_looks=["socks"],
    )
    assert t.slot_for_fields("Camisoles") is None
    assert t.slot_for_fields("kimono") == "outerwear"  # case-insensitive
    assert t.slot_for_fields("Evening Pochette") == "bag"
    belt = Product(id="1", title="x", article_type="Belt")
    socks = Product(id="2", title="x", article_type="Socks")
    assert t.look_slot(belt) is None and t.slot_for(belt) == "accessory"
    assert t.look_slot(socks) == "accessory"
    assert DEFAULT_TAXONOMY.look_slot(socks) is None


def test_unknown_slot_names_are_refused() -> None:
    with pytest.raises(ValueError, match="unknown slot"):
        canonical_slot("hat-slot")
    with pytest.raises(ValueError, match="unknown slot"):
        Taxonomy.from_config(slots={"Kimono": "robe-slot"})


def test_report_counts_unmapped_types() -> None:
    products = [
        Product(id="1", title="a", article_type="Jeans"),
        Product(id="2", title="b", article_type="Candle"),
        Product(id="3", title="c", article_type="Candle"),
        Product(id="4", title="d"),
    ]
    rep = DEFAULT_TAXONOMY.report(products)
    assert rep.products == 4
    assert rep.by_slot == {"bottom": 1}
    assert rep.unmapped == {"Candle": 2, "(no type)": 1}
    assert "3 of 4 products" in rep.summary() and "Candle (2)" in rep.summary()
