"""Any retailer's catalog, end to end against the real node: a tiny synthetic catalog in a
third taxonomy (German column names and type names, colours in German, no titles or
descriptions, one attribute column always empty, a type the taxonomy cannot place) goes
through its mapping file -> ``engine fit`` -> ingest -> text and photo search -> complete the
look, with no crash, and the unmapped type is reported; the bundle's shopper-photo model is
fitted to the same catalog's photos (found through the mapping) and reads an upload that is
not a studio shot."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from PIL import Image, ImageDraw

from engine.api.app import create_app
from engine.backend import Backend
from engine.bundle import read_manifest
from engine.catalog import load_catalog_mapping
from engine.settings import Settings
from tests.conftest import TEST_PREFIX

pytestmark = [pytest.mark.opensearch, pytest.mark.slow]

COLOURS = {"rot": (200, 30, 30), "blau": (30, 60, 200), "gruen": (30, 160, 60)}
GROUPS = {"rot": "ROT", "blau": "BLAU", "gruen": "GRUEN"}
TYPES = ("Hemd", "Hose", "Schuhe")
PER_CELL = 7

MAPPING = """
name = "drittanbieter"
format = "csv"

[columns]
id = "artikelnr"
article_type = "typ"
base_colour = "farbgruppe"
colour1 = "farbe"
gender = "geschlecht"
price = "preis"

[attributes]
Muster = "muster"     # always empty in this catalog: no head, a note

[values.gender]
D = "Women"
H = "Men"

[images]
columns = ["bild"]

[text]
title = "{colour1} {article_type}"

[taxonomy]
slots = { "Hemd" = "top", "Hose" = "bottom", "Schuhe" = "shoes" }
"""


def _draw(kind: str, rgb: tuple[int, int, int], seed: int) -> Image.Image:
    img = Image.new("RGB", (96, 96), (255, 255, 255))
    d = ImageDraw.Draw(img)
    j = seed % 5
    if kind == "Hemd":  # a T shape
        d.rectangle((20 + j, 20, 76 - j, 34), fill=rgb)
        d.rectangle((34, 20, 62, 80), fill=rgb)
    elif kind == "Hose":  # two legs
        d.rectangle((30, 14 + j, 66, 30), fill=rgb)
        d.rectangle((30, 14 + j, 45, 86), fill=rgb)
        d.rectangle((51, 14 + j, 66, 86), fill=rgb)
    elif kind == "Schuhe":  # a low wedge
        d.polygon([(12, 70 - j), (84, 70), (84, 82), (12, 82)], fill=rgb)
        d.rectangle((12, 50 - j, 36, 82), fill=rgb)
    else:  # a candle
        d.rectangle((44, 20, 52, 86), fill=rgb)
    return img


@pytest.fixture(scope="module")
def catalog(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("drittanbieter")
    images = root / "bilder"
    images.mkdir()
    rows = []
    n = 0
    for kind in (*TYPES, "Kerze"):
        for colour, rgb in COLOURS.items():
            for k in range(PER_CELL if kind != "Kerze" else 4):
                n += 1
                item = f"DA-{n:04d}"
                name = f"foto_{n}.jpg"
                _draw(kind, rgb, n).save(images / name, quality=90)
                rows.append(
                    {
                        "artikelnr": item,
                        "typ": kind,
                        "farbe": colour,
                        "farbgruppe": GROUPS[colour],
                        "geschlecht": "D" if k % 2 else "H",
                        "preis": str(10 + n),
                        "bild": name,
                        "muster": "",
                    }
                )
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]))
    writer.writeheader()
    writer.writerows(rows)
    (root / "artikel.csv").write_text(buf.getvalue(), encoding="utf-8")
    (root / "mapping.toml").write_text(MAPPING, encoding="utf-8")
    # looks: a shirt, trousers and shoes of one colour
    by: dict[tuple[str, str], list[str]] = {}
    for r in rows:
        by.setdefault((r["typ"], r["farbe"]), []).append(r["artikelnr"])
    lines = ["outfit_id,item_id"]
    look = 0
    for colour in COLOURS:
        for k in range(PER_CELL):
            look += 1
            for kind in TYPES:
                ids = by[(kind, colour)]
                lines.append(f"L{look},{ids[(k + TYPES.index(kind)) % len(ids)]}")
    (root / "outfits.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"root": root, "images": images, "rows": rows}


@pytest.fixture(scope="module")
def bundle(catalog: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    from engine.train.fit import FitConfig, fit
    from engine.train.shopper import ShopperConfig

    root = catalog["root"]
    out = tmp_path_factory.mktemp("bundle")
    report = fit(
        root / "artikel.csv",
        mapping=load_catalog_mapping(root / "mapping.toml"),
        images_dir=catalog["images"],
        out=out,
        looks=root / "outfits.csv",
        cfg=FitConfig(
            minutes=None,
            joint_epochs=6,
            colour_epochs=4,
            looks_epochs=2,
            cache_dir=tmp_path_factory.mktemp("cache"),
            shopper_config=ShopperConfig(
                copies=1, epochs=2, type_epochs=3, tail_epochs=1, type_hidden=64
            ),
        ),
    )
    assert report["products"] == len(catalog["rows"])
    assert report["slots"]["unmapped_types"] == {"Kerze": 12}
    assert any(n.startswith("muster") for n in report["notes"]), report["notes"]
    assert report["looks"]["fitted"] is True, report["looks"]
    assert report["shopper"]["fitted"] is True, report["shopper"]
    assert report["shopper"]["train_items"] >= 20 and report["shopper"]["val_items"] >= 2
    return out


def test_bundle_manifest_has_the_catalogs_label_spaces(bundle: Path) -> None:
    manifest = read_manifest(bundle)
    assert manifest is not None
    assert set(manifest.label_spaces["article_type"]) == {"Hemd", "Hose", "Schuhe", "Kerze"}
    assert set(manifest.label_spaces["base_colour"]) == set(GROUPS.values())
    assert "muster" not in manifest.label_spaces  # the always-empty attribute has no head
    assert set(manifest.parts) == {"joint", "compat", "shopper"}
    assert "text_to_image_recall_at_10" in manifest.metrics
    json.dumps(manifest.model_dump())  # serialisable


@pytest.fixture(scope="module")
def served(
    cluster: Backend,
    settings: Settings,
    catalog: dict[str, Any],
    bundle: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[dict[str, Any]]:
    from engine.looks.compat import CompatModel
    from engine.looks.format import load_looks
    from engine.looks.service import LookService
    from engine.models.joint import JointModel
    from ingest import ingest_products
    from ingest.looks import ingest_looks

    root = catalog["root"]
    tag = uuid.uuid4().hex[:8]
    fitted = settings.with_models(bundle=bundle, onnx=False)
    products_index = f"{TEST_PREFIX}-products-fit-{tag}"  # our index template's pattern
    looks_index = f"{TEST_PREFIX}-looks-fit-{tag}"
    for name in (products_index, looks_index):
        cluster.ensure_index(name)
    try:
        report = ingest_products(
            fitted,
            root / "artikel.csv",
            images_dir=catalog["images"],
            mapping=load_catalog_mapping(root / "mapping.toml"),
            index=products_index,
            backend=cluster,
            state_dir=tmp_path_factory.mktemp("state"),
            progress=False,
        )
        cluster.refresh(products_index)
        joint = JointModel.load(bundle, "cpu")
        compat = CompatModel.load(bundle, device="cpu")
        looks = ingest_looks(
            cluster,
            load_looks(root / "outfits.csv"),
            products_index=products_index,
            looks_index=looks_index,
            refresh=True,
        )
        svc = LookService(
            cluster,
            products_index=products_index,
            looks_index=looks_index,
            model=compat,
            joint_loader=lambda: joint,
        )
        from engine.search.service import SearchService

        search = SearchService.from_settings(fitted, cluster, joint, index=products_index)
        app = create_app(
            fitted,
            backend=cluster,
            loaders={"joint": lambda: joint, "looks_service": lambda: svc},
        )
        with TestClient(app) as client:
            yield {
                "report": report,
                "looks": looks,
                "client": client,
                "search": search,
                "index": products_index,
                "bundle": bundle,
            }
    finally:
        for name in (products_index, looks_index):
            cluster.delete_index(name)


def test_ingest_reports_the_unmapped_type(served: dict[str, Any], catalog: dict[str, Any]) -> None:
    report = served["report"]
    assert report.failed == 0 and report.indexed == len(catalog["rows"])
    assert report.unmapped_types == {"Kerze": 12}
    assert "Kerze (12)" in report.summary()
    assert report.model_warning is None  # the bundle was fitted to this catalog


def test_documents_carry_the_mapped_fields(served: dict[str, Any], cluster: Backend) -> None:
    doc = cluster.get(served["index"], "DA-0001")
    assert doc["title"] == "rot Hemd" and doc["gender"] in ("Women", "Men")
    assert doc["slot"] == "top" and doc["look_slot"] == "top"
    assert doc["base_colour"] == "ROT"
    candle = cluster.get(served["index"], "DA-0064")
    assert candle["article_type"] == "Kerze" and "slot" not in candle


def test_text_and_photo_search(served: dict[str, Any], catalog: dict[str, Any]) -> None:
    from engine.queries import Filters

    search = served["search"]
    res = search.text_search("blau Hose", Filters(), size=5)
    assert res.hits, "text search found nothing"
    assert sum(h.article_type == "Hose" for h in res.hits) >= 3
    photo = Image.open(catalog["images"] / "foto_2.jpg")
    res = search.image_search(photo, Filters(), size=5, explain=True)
    assert res.hits and res.hits[0].article_type == "Hemd"
    assert search.fit_check.fitted()  # the bundle knows this catalog: classifier in the fusion


def test_shopper_photo_through_the_fitted_shopper_model(
    served: dict[str, Any], catalog: dict[str, Any], cluster: Backend, settings: Settings
) -> None:
    from engine.models.joint import JointModel
    from engine.models.shopper import ShopperModel
    from engine.queries import Filters
    from engine.search.service import SearchService
    from engine.train.datagen.shopper import item_rng, synthesise

    bundle = served["bundle"]
    joint, shopper = JointModel.load(bundle, "cpu"), ShopperModel.load(bundle)
    assert shopper.fits(joint)  # its type head knows this catalog's types
    assert shopper.type_head is not None
    assert shopper.type_head.net[-1].out_features == len(joint.attribute_vocab["article_type"])
    search = SearchService.from_settings(
        settings.with_models(bundle=bundle, onnx=False),
        cluster,
        joint,
        index=served["index"],
        shopper=lambda: shopper,
    )
    studio = Image.open(catalog["images"] / "foto_2.jpg").convert("RGB")
    photo = synthesise(studio, item_rng(3, "DA-0002", 0)).image  # on a background, not white
    res = search.image_search(photo, Filters(), size=5, explain=True)
    assert res.hits
    assert res.located is not None and res.located.source in ("objectness", "full")


def test_complete_the_look(served: dict[str, Any]) -> None:
    assert served["looks"].indexed > 10
    r = served["client"].post("/complete-the-look", json={"item_id": "DA-0001", "size": 3})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["query"]["slot"] == "top"
    assert body["slots"].get("bottom") and body["slots"].get("shoes")


def test_health_says_whether_the_bundle_knows_the_catalog(
    served: dict[str, Any], cluster: Backend, settings: Settings
) -> None:
    from engine.api.routers.health import catalog_fit

    body = served["client"].get("/health").json()
    assert body["models"]["bundle"] == str(served["bundle"])
    fitted = catalog_fit(cluster, served["bundle"], served["index"])
    assert fitted["fitted_to_catalog"] is True and "warning" not in fitted
    # the shipped default bundle over the same index: not fitted, and it says how to fit
    out = catalog_fit(cluster, None, served["index"])
    assert out["fitted_to_catalog"] is False
    assert "python -m engine fit" in out["warning"]
