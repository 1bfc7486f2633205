"""Which label spaces `engine fit` learns from a catalog (engine.train.fit.attribute_fields)."""

from __future__ import annotations

from engine.catalog import Product
from engine.catalog.mapping import parse_mapping
from engine.train.label_spaces import attribute_fields


def test_label_spaces_the_catalog_has() -> None:
    products = [
        Product(
            id=str(i),
            title="t",
            article_type=("Dress", "Jeans")[i % 2],
            base_colour=("Red", "Blue", "Green")[i % 3],
            gender="Women",  # one value only: no head
            attributes={"Fit": ("Slim", "Loose")[i % 2], "SKU": f"sku-{i}"} if i < 40 else {},
        )
        for i in range(400)
    ]
    fields, notes = attribute_fields(products, parse_mapping({"attributes": {"Stoff": "stoff"}}))
    assert fields["article_type"] == "article_type" and fields["base_colour"] == "base_colour"
    assert fields["fit"] == "attributes.Fit"  # an attribute on 10% of the products
    assert "gender" not in fields and any(n.startswith("gender: 1 distinct") for n in notes)
    assert "sku" not in fields  # an identifier: every value seen once
    assert "stoff" not in fields and any(n.startswith("stoff: empty") for n in notes)
    assert any(n.startswith("usage: empty") for n in notes)
