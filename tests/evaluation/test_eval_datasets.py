"""Evaluation datasets (any catalog in the shared format) and the repo sample."""

from __future__ import annotations

import gzip
import json
import shutil
from collections import Counter
from pathlib import Path

import pytest

from engine.catalog import is_test_id
from engine.errors import InvalidInput, NotFound
from evaluation.datasets import dataset_from_products, known, load_dataset, write_catalog
from evaluation.make_sample import select_sample

ROOT = Path(__file__).resolve().parents[2]
SAMPLE_DIR = ROOT / "sample"
SHARED = ROOT.parent / "shared" / "data" / "fashion-product-images"


def test_sample_catalog_is_what_the_brief_asks_for() -> None:
    ds = load_dataset(SAMPLE_DIR / "catalog.jsonl", SAMPLE_DIR / "images")
    assert 250 <= len(ds) <= 350
    assert not ds.row_errors
    assert len(ds.photographed) == len(ds)  # every sample product has its photo
    assert ds.test_photographed and ds.train_photographed
    assert ds.field_counts["style_note"] >= 50
    types = Counter(p.article_type for p in ds)
    assert len(types) >= 40
    for t in (
        "Tshirts",
        "Shirts",
        "Tops",
        "Dresses",
        "Jeans",
        "Trousers",
        "Casual Shoes",
        "Heels",
        "Handbags",
        "Watches",
    ):
        assert types[t] >= 8, t
    colours = {(p.article_type, (p.base_colour or "").lower()) for p in ds}
    for pair in (("Dresses", "red"), ("Shirts", "black"), ("Tshirts", "black")):
        assert pair in colours
    total = sum(f.stat().st_size for f in (SAMPLE_DIR / "images").glob("*.jpg"))
    assert total < 6 * 1024 * 1024


def test_split_views_follow_is_test_id() -> None:
    ds = load_dataset(SAMPLE_DIR / "catalog.jsonl", SAMPLE_DIR / "images")
    assert {p.id for p in ds.test} == {p.id for p in ds if is_test_id(p.id)}
    assert len(ds.test) + len(ds.train) == len(ds)
    assert ds.counts()["test_photographed"] == len(ds.test_photographed)
    pid = ds.products[0].id
    assert ds.get(pid).id == pid
    assert ds.image(pid).is_file()
    with pytest.raises(NotFound):
        ds.get("no-such-id")


def test_gz_catalog_missing_fields_bad_rows_and_missing_photos(tmp_path: Path) -> None:
    rows = [
        {"id": 1, "title": "Plain tee", "article_type": "Tshirts", "base_colour": "NA"},
        {"id": "2", "title": "Jeans", "rating": 4.5, "style_note": "wear with white sneakers"},
        {"id": "3"},  # no title: a bad row
        {"id": "2", "title": "duplicate"},
    ]
    path = tmp_path / "cat.jsonl.gz"
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")
        fh.write("not json\n")
    images = tmp_path / "img"
    images.mkdir()
    shutil.copyfile(next((SAMPLE_DIR / "images").glob("*.jpg")), images / "2.jpg")
    ds = load_dataset(path, images)
    assert [p.id for p in ds] == ["1", "2"]
    assert len(ds.row_errors) == 3
    assert [p.id for p in ds.photographed] == ["2"]
    assert ds.field_counts["style_note"] == 1
    assert ds.field_counts["base_colour"] == 0  # "NA" is a placeholder
    assert ds.has_field("rating") and not ds.has_field("description")
    assert [p.id for p in ds.with_field("style_note")] == ["2"]
    with pytest.raises(NotFound):
        ds.image("1")
    # no photo folder at all: still usable, nothing photographed
    no_img = load_dataset(path, tmp_path / "missing")
    assert len(no_img) == 2 and no_img.photographed == []
    assert len(load_dataset(path, images, max_items=1)) == 1
    assert [p.id for p in load_dataset(path, images, photographed_only=True)] == ["2"]


def test_empty_or_missing_catalog(tmp_path: Path) -> None:
    with pytest.raises(NotFound):
        load_dataset(tmp_path / "nope.jsonl")
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(InvalidInput):
        load_dataset(empty)


def test_dataset_from_products_and_write_catalog(tmp_path: Path) -> None:
    ds = load_dataset(SAMPLE_DIR / "catalog.jsonl", SAMPLE_DIR / "images")
    sub = dataset_from_products(ds.products[:10], SAMPLE_DIR / "images")
    assert len(sub.photographed) == 10
    write_catalog(ds.products[:10], tmp_path / "c.jsonl")
    again = load_dataset(tmp_path / "c.jsonl")
    assert [p.id for p in again] == [p.id for p in ds.products[:10]]
    assert again.products[0] == ds.products[0]
    assert known("NA") is None and known(" ") is None and known("Red") == "Red"


def _rows() -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    colours = ["Black", "Blue", "Red", "White"]
    for i in range(200):
        rows.append(
            {
                "id": str(1000 + i),
                "title": f"t{i}",
                "article_type": ["Tshirts", "Jeans", "Heels", "Caps", "Odd"][i % 5],
                "base_colour": colours[(i // 5) % 4],
                "gender": "Men" if i % 2 else "Women",
                "style_note": "x" if i % 7 == 0 else "",
            }
        )
    return rows


def test_select_sample_is_deterministic_and_diverse() -> None:
    rows = _rows()
    photographed = {str(r["id"]) for r in rows if int(str(r["id"])) % 10 != 3}
    quotas = {"Tshirts": 8, "Jeans": 6, "Heels": 4}
    a = select_sample(rows, photographed, seed=1, quotas=quotas, other_quota=1)
    b = select_sample(list(reversed(rows)), photographed, seed=1, quotas=quotas, other_quota=1)
    c = select_sample(rows, photographed, seed=2, quotas=quotas, other_quota=1)
    assert sorted(r["id"] for r in a) == sorted(r["id"] for r in b)
    assert [r["id"] for r in a] != [r["id"] for r in c]
    assert all(r["id"] in photographed for r in a)
    types = Counter(r["article_type"] for r in a)
    assert types == {"Tshirts": 8, "Jeans": 6, "Heels": 4, "Caps": 1, "Odd": 1}
    # about two per colour: 8 T-shirts over the four colours
    assert Counter(r["base_colour"] for r in a if r["article_type"] == "Tshirts") == {
        "Black": 2,
        "Blue": 2,
        "Red": 2,
        "White": 2,
    }
    # input order is kept
    index = {r["id"]: i for i, r in enumerate(rows)}
    assert [index[r["id"]] for r in a] == sorted(index[r["id"]] for r in a)


@pytest.mark.slow
@pytest.mark.skipif(not (SHARED / "catalog.jsonl.gz").is_file(), reason="shared data missing")
def test_sample_regenerates_identically_from_shared_data() -> None:
    with gzip.open(SHARED / "catalog.jsonl.gz", "rt", encoding="utf-8") as fh:
        rows = [json.loads(line) for line in fh if line.strip()]
    photographed = {p.stem for p in (SHARED / "images").glob("*.jpg")}
    chosen = select_sample(rows, photographed, seed=13)
    committed = (SAMPLE_DIR / "catalog.jsonl").read_text(encoding="utf-8").splitlines()
    assert [json.dumps(r, ensure_ascii=False) for r in chosen] == committed


def test_write_catalog_never_truncates_a_file_being_read(tmp_path: Path) -> None:
    # two evaluation runs (one per engine) write the same derived catalog: a reader of the old
    # file must still read all of it (it lost rows when the file was rewritten in place)
    path = tmp_path / "c.jsonl"
    write_catalog([{"id": str(i)} for i in range(1000)], path)
    with path.open(encoding="utf-8") as reader:
        first = reader.readline()
        write_catalog([{"id": "x"}], path)
        rest = reader.readlines()
    assert json.loads(first) == {"id": "0"} and len(rest) == 999
    assert path.read_text(encoding="utf-8") == '{"id": "x"}\n'
    assert [p.name for p in tmp_path.iterdir()] == ["c.jsonl"]
