"""Retailer mapping files (engine.catalog.mapping) read through the one catalog reader."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.catalog import load_catalog_mapping, read_products
from engine.catalog.mapping import CatalogMapping, parse_mapping, presets
from engine.catalog.product import local_image_path
from engine.errors import InvalidInput

CSV = (
    "sku;naam;typ;farbe;geschlecht;bild_a;bild_b;stoff\n"
    "A1;;Hose;ROT;F;x/a1.jpg;x/a1b.jpg;Wolle\n"
    "A2;Rock Fein;Rock;NA;M;a2.jpg;;-\n"
    "A3;;;;;;;\n"
).replace(";", ",")

TOML = """
name = "drittanbieter"
format = "csv"
placeholders = ["k.a."]

[columns]
id = "sku"
title = "naam"
article_type = "typ"
base_colour = "farbe"
gender = "geschlecht"

[attributes]
Material = "stoff"

[values.gender]
F = "Women"
M = "Men"

[images]
columns = ["bild_a", "bild_b"]
basename = true

[text]
compose_title = "when_missing"

[taxonomy]
slots = { "Hose" = "bottom", "Rock" = "bottom" }
"""


def _files(tmp_path: Path) -> tuple[Path, Path]:
    catalog = tmp_path / "c.csv"
    catalog.write_text(CSV, encoding="utf-8")
    mapping = tmp_path / "m.toml"
    mapping.write_text(TOML, encoding="utf-8")
    return catalog, mapping


def test_toml_mapping_reads_another_taxonomy(tmp_path: Path) -> None:
    catalog, mapping_path = _files(tmp_path)
    mapping = load_catalog_mapping(mapping_path)
    products, failed = read_products(catalog, mapping)
    by_id = {p.id: p for p in products}
    a1 = by_id["A1"]
    assert a1.title == "ROT Hose"  # composed: no title column value
    assert a1.gender == "Women"  # value mapping
    assert a1.image_urls == ["a1.jpg", "a1b.jpg"]  # two columns, basenames
    assert a1.attributes == {"Material": "Wolle"}
    a2 = by_id["A2"]
    assert a2.title == "Rock Fein" and a2.base_colour is None  # "NA" is a placeholder
    assert a2.attributes == {}  # "-" is a placeholder
    # a row with nothing to compose a title from is reported, not dropped silently
    assert [r.failure.code for r in failed if r.failure] == ["missing_title"]
    taxonomy = mapping.build_taxonomy()
    assert taxonomy.slot_for(a1) == "bottom" and taxonomy.slot_for(a2) == "bottom"


def test_yaml_and_json_mappings_are_the_same(tmp_path: Path) -> None:
    import tomllib

    import yaml

    data = tomllib.loads(TOML)
    (tmp_path / "m.yaml").write_text(yaml.safe_dump(data), encoding="utf-8")
    (tmp_path / "m.json").write_text(json.dumps(data), encoding="utf-8")
    a = load_catalog_mapping(tmp_path / "m.yaml")
    b = load_catalog_mapping(tmp_path / "m.json")
    assert a == b and a.columns["id"] == "sku"


def test_flat_mapping_still_reads() -> None:
    m = parse_mapping({"id": "sku", "attributes.Fit": "fit", "image_urls": "pics"})
    assert m.columns == {"id": "sku"}
    assert m.attribute_columns == {"Fit": "fit"}
    assert m.images.columns == ["pics"]
    assert m.text.compose_title == "never"


@pytest.mark.parametrize(
    ("data", "match"),
    [
        ({"columns": {"titel": "x"}}, "unknown field"),
        ({"columns": {"id": 3}}, "valid string"),
        ({"taxonomy": {"slots": {"Hose": "legs"}}}, "unknown slot"),
        ({"text": {"title": "{colour} {typ}"}}, "unknown field"),
        ({"colums": {}}, "Extra inputs"),
        (["id"], "must be an object"),
    ],
)
def test_bad_mappings_say_what_is_wrong(data: object, match: str) -> None:
    with pytest.raises(InvalidInput, match=match):
        parse_mapping(data)


def test_unreadable_mapping_files(tmp_path: Path) -> None:
    bad = tmp_path / "m.toml"
    bad.write_text("[columns\nid=", encoding="utf-8")
    with pytest.raises(InvalidInput, match="cannot read mapping"):
        load_catalog_mapping(bad)
    with pytest.raises(InvalidInput, match="neither a file nor a preset"):
        load_catalog_mapping(tmp_path / "nope.toml")


def test_presets_ship_and_parse() -> None:
    names = presets()
    assert {"myntra", "mango"} <= set(names)
    for name in names:
        assert isinstance(load_catalog_mapping(name), CatalogMapping)
    mango = load_catalog_mapping("mango")
    assert mango.columns["id"] == "cod_modelo_color" and mango.images.basename


def test_title_template_and_shouting_values() -> None:
    m = parse_mapping({"text": {"title": "{colour1} {article_type}"}})
    assert m.compose_title({"colour1": "TEJANO OSCURO", "article_type": "Jeans"}) == (
        "Tejano Oscuro Jeans"
    )
    assert m.compose_title({}) is None


def test_local_image_path(tmp_path: Path) -> None:
    from engine.catalog import Product

    (tmp_path / "a.jpg").write_bytes(b"x")
    (tmp_path / "7.jpg").write_bytes(b"x")
    p = Product(id="1", title="t", image_urls=["https://cdn/x.jpg", "missing.jpg", "a.jpg"])
    assert local_image_path(p, tmp_path) == tmp_path / "a.jpg"
    assert local_image_path(Product(id="7", title="t"), tmp_path) == tmp_path / "7.jpg"
    assert local_image_path(Product(id="8", title="t"), tmp_path) is None
