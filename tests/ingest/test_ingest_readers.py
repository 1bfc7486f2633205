"""Catalog readers: JSONL(.gz), CSV, Parquet, field mapping, per-row failures."""

from __future__ import annotations

import csv
import gzip
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine.errors import InvalidInput
from ingest.readers import (
    count_rows,
    detect_format,
    iter_rows,
    load_mapping,
    map_record,
    validate_mapping,
)

ROWS = [
    {"id": "1", "title": "Red Dress", "article_type": "Dresses", "price": 999, "rating": 4.5},
    {"id": 2, "title": "Blue Jeans", "article_type": "Hoverboards", "attributes": {"Fit": "Slim"}},
]


def _jsonl(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_detect_format() -> None:
    assert detect_format(Path("a/catalog.jsonl.gz")) == "jsonl"
    assert detect_format(Path("c.ndjson")) == "jsonl"
    assert detect_format(Path("c.CSV")) == "csv"
    assert detect_format(Path("c.parquet")) == "parquet"
    with pytest.raises(InvalidInput):
        detect_format(Path("c.xlsx"))


def test_jsonl_rows_and_failures(tmp_path: Path) -> None:
    lines = [
        json.dumps(ROWS[0]),
        "",  # blank lines are not rows
        json.dumps(ROWS[1]),
        '{"id": "3", "title": "broken',  # malformed JSON
        json.dumps({"id": "4", "brand": "NoTitle"}),  # missing title
        json.dumps({"id": "5", "title": "Bad price", "price": "abc"}),  # wrong type
        json.dumps({"id": "1", "title": "Red Dress again"}),  # duplicate id
        json.dumps(["not", "an", "object"]),
        json.dumps({"title": "no id"}),
        json.dumps({"id": "6", "title": "Bad attrs", "attributes": ["x"]}),
    ]
    rows = list(iter_rows(_jsonl(tmp_path / "c.jsonl", lines)))
    assert [r.seq for r in rows] == list(range(9))
    assert [r.line for r in rows] == [1, 3, 4, 5, 6, 7, 8, 9, 10]
    ok = [r for r in rows if r.product is not None]
    assert [r.product.id for r in ok if r.product] == ["1", "2"]
    # unknown categories are kept as they are
    assert ok[1].product is not None and ok[1].product.article_type == "Hoverboards"
    codes = {r.line: (r.failure.code, r.failure.item_id) for r in rows if r.failure}
    assert codes == {
        4: ("malformed_json", None),
        5: ("missing_title", "4"),
        6: ("invalid_field", "5"),
        7: ("duplicate_id", "1"),
        8: ("not_an_object", None),
        9: ("missing_id", None),
        10: ("invalid_field", "6"),
    }
    bad_price = next(r for r in rows if r.line == 6)
    assert bad_price.failure is not None and "price" in bad_price.failure.reason


def test_jsonl_gz_and_count(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in ROWS:
            fh.write(json.dumps(r) + "\n")
    rows = list(iter_rows(path))
    assert [r.product.id for r in rows if r.product] == ["1", "2"]
    assert count_rows(path) == 2


def test_shared_catalog_format_needs_no_mapping() -> None:
    sample = Path(__file__).resolve().parents[2] / "sample" / "catalog.jsonl"
    if not sample.is_file():
        pytest.skip("sample catalog not generated")
    rows = list(iter_rows(sample))
    assert rows and all(r.product is not None for r in rows)
    assert len({r.product.id for r in rows if r.product}) == len(rows)


def test_csv_with_mapping(tmp_path: Path) -> None:
    path = tmp_path / "shop.csv"
    with path.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["sku", "name", "cost", "stock", "photos", "pattern", "attrs", "colour"])
        w.writerow(
            [
                "A1",
                "Striped Shirt",
                "1299.5",
                "false",
                "a.jpg|b.jpg",
                "Striped",
                '{"Fit": "Slim"}',
                "",
            ]
        )
        w.writerow(["A2", "Plain Tee", "", "true", "", "", "", "White"])
        w.writerow(["A3", "Pricey", "1,299", "true", "", "", "", ""])  # wrong type
        w.writerow(["A4", "", "10", "true", "", "", "", ""])  # missing title
        w.writerow(["A5", "Multi\nline title", "5", "yes", '["x.jpg", "y.jpg"]', "", "", ""])
    mapping = validate_mapping(
        {
            "id": "sku",
            "title": "name",
            "price": "cost",
            "in_stock": "stock",
            "image_urls": "photos",
            "attributes": "attrs",
            "attributes.Pattern": "pattern",
            "base_colour": "colour",
        }
    )
    rows = list(iter_rows(path, mapping=mapping))
    by_id = {r.item_id: r for r in rows}
    a1 = by_id["A1"].product
    assert a1 is not None
    assert a1.price == 1299.5 and a1.in_stock is False
    assert a1.image_urls == ["a.jpg", "b.jpg"]
    assert a1.attributes == {"Fit": "Slim", "Pattern": "Striped"}
    assert a1.base_colour is None  # empty cell -> missing
    a2 = by_id["A2"].product
    assert a2 is not None and a2.price is None and a2.base_colour == "White"
    assert by_id["A3"].failure is not None and by_id["A3"].failure.code == "invalid_field"
    assert by_id["A4"].failure is not None and by_id["A4"].failure.code == "missing_title"
    a5 = by_id["A5"].product
    assert a5 is not None and a5.image_urls == ["x.jpg", "y.jpg"] and a5.in_stock is True
    assert [r.line for r in rows] == [2, 3, 4, 5, 6]


def test_parquet_with_mapping(tmp_path: Path) -> None:
    table = pa.table(
        {
            "product_id": pa.array([10, 11, 12]),
            "name": pa.array(["Linen Shirt", "Chinos", None]),
            "price": pa.array([49.0, float("nan"), 10.0]),
            "tags": pa.array(
                [[("Fabric", "Linen")], None, []], type=pa.map_(pa.string(), pa.string())
            ),
            "images": pa.array([["s1.jpg", "s2.jpg"], None, []]),
        }
    )
    path = tmp_path / "c.parquet"
    pq.write_table(table, path)
    mapping = {"id": "product_id", "title": "name", "attributes": "tags", "image_urls": "images"}
    rows = list(iter_rows(path, mapping=mapping))
    assert count_rows(path) == 3
    p10, p11 = rows[0].product, rows[1].product
    assert p10 is not None and p10.id == "10" and p10.attributes == {"Fabric": "Linen"}
    assert p10.image_urls == ["s1.jpg", "s2.jpg"] and p10.price == 49.0
    assert p11 is not None and p11.price is None and p11.image_urls == []
    assert rows[2].failure is not None and rows[2].failure.code == "missing_title"
    assert [r.line for r in rows] == [1, 2, 3]


def test_mapping_validation(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="unknown field"):
        validate_mapping({"titel": "name"})
    with pytest.raises(InvalidInput):
        validate_mapping({"title": 3})
    path = tmp_path / "m.json"
    path.write_text('{"title": "name", "attributes.Fit": "fit"}')
    assert load_mapping(path) == {"title": "name", "attributes.Fit": "fit"}
    assert load_mapping(None) == {}
    path.write_text("{not json")
    with pytest.raises(InvalidInput):
        load_mapping(path)


def test_unmapped_fields_fall_back_to_same_name() -> None:
    rec = map_record({"sku": "1", "title": "T", "brand": "B"}, {"id": "sku"})
    assert rec == {"id": "1", "title": "T", "brand": "B"}


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not found"):
        list(iter_rows(tmp_path / "nope.jsonl"))
