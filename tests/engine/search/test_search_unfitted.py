"""Never serve a model that does not know the catalog: with a bundle whose type labels miss
the index's, photo search uses the k-NN vote alone and re-ranks by the catalog's own fields."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytest
from PIL import Image

from engine.bundle import CatalogFitCheck
from engine.search.attribute_rerank import neighbour_distribution, own_fields
from engine.search.service import SearchOptions, SearchService
from tests.search_fakes import FakeBackend, FakeModel, hit, response


class PhotoModel(FakeModel):
    """A fake model that also predicts colour and type from photos (in its own label space)."""

    def image_features(self, images: Sequence[Image.Image]) -> np.ndarray:
        return self.embed_images(images)

    def embed_image_features(self, feats: np.ndarray) -> np.ndarray:
        return feats

    def image_attribute_probabilities(self, feats: np.ndarray, emb: np.ndarray) -> dict[str, Any]:
        n = feats.shape[0]
        return {
            "article_type": np.tile(self.article_probs, (n, 1)),
            "base_colour": np.tile(np.asarray([0.9, 0.05, 0.03, 0.02], np.float32), (n, 1)),
        }


def _service(be: FakeBackend, fitted: bool) -> SearchService:
    labels = ["Kurta", "Saree"] if fitted else ["Shirts"]
    check = CatalogFitCheck(lambda: {"Kurta": 10, "Saree": 10}, lambda: labels)
    return SearchService(
        be,  # type: ignore[arg-type]
        index="idx",
        pipeline="pipe",
        model=PhotoModel(),
        options=SearchOptions(vote_k=4, category_threshold=0.99),
        fit_check=check,
    )


def _neighbours() -> list[dict[str, Any]]:
    # the nearest are red sarees; a black kurta is the closest single hit
    return [
        hit("k1", 0.99, article_type="Kurta", base_colour="Black"),
        hit("s1", 0.98, article_type="Saree", base_colour="Red"),
        hit("s2", 0.97, article_type="Saree", base_colour="Red"),
        hit("s3", 0.96, article_type="Saree", base_colour="Red"),
        hit("k2", 0.95, article_type="Kurta", base_colour="Red"),
    ]


def test_unfitted_bundle_uses_the_vote_and_the_catalogs_own_fields() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*_neighbours())
    res = _service(be, fitted=False).image_search(Image.new("RGB", (8, 8)), size=5, explain=True)
    assert res.category is not None
    assert res.category.classifier == {}  # the classifier's labels are not this catalog's
    assert res.category.label == "Saree"  # the vote
    assert res.strategy.endswith("+catalog-attribute-rerank")
    # red sarees (the neighbours' own type and colour) move above the black kurta
    assert [h.id for h in res.hits][:3] == ["s1", "s2", "s3"]


def test_fitted_bundle_keeps_the_classifier() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*_neighbours())
    res = _service(be, fitted=True).image_search(Image.new("RGB", (8, 8)), size=5)
    assert res.category is not None and res.category.classifier
    assert "+catalog-attribute-rerank" not in res.strategy


def test_catalog_field_distributions() -> None:
    assert own_fields({"article_type": "Saree", "base_colour": "Navy Blue", "x": 1}) == {
        "article_type": {"saree": 1.0},
        "base_colour": {"navy_blue": 1.0},
    }
    assert own_fields(None) == {}
    dist = neighbour_distribution(
        [
            ({"article_type": "Saree"}, 0.6),
            ({"article_type": "Kurta"}, 0.2),
            ({}, 0.9),
            ({"article_type": "Kurta"}, -0.5),
        ]
    )
    assert dist.keys() == {"article_type"}
    assert dist["article_type"] == pytest.approx({"saree": 0.75, "kurta": 0.25})


def test_a_fitted_bundles_category_weight_is_used() -> None:
    be = FakeBackend()
    be.on_search = lambda body, kw: response(*_neighbours())
    photo_model = PhotoModel()
    photo_model.config = {"category_alpha": 1.0}  # the classifier alone
    svc = SearchService(
        be,  # type: ignore[arg-type]
        index="idx",
        pipeline="pipe",
        model=photo_model,
        options=SearchOptions(vote_k=4, category_threshold=0.99),
        fit_check=CatalogFitCheck(lambda: {"Kurta": 1}, lambda: ["Kurta"]),
    )
    res = svc.image_search(Image.new("RGB", (8, 8)), size=3)
    assert res.category is not None
    assert res.category.label == "Shirts"  # the fake classifier's top label; the vote is ignored
    fused = {k: v for k, v in res.category.fused.items() if v > 0}
    assert fused == res.category.classifier


def test_a_shopper_photos_type_head_is_the_classifier_side() -> None:
    from types import SimpleNamespace

    be = FakeBackend()
    be.on_search = lambda body, kw: response(*_neighbours())
    svc = _service(be, fitted=True)
    photo = SimpleNamespace(
        types={"Kurta": 0.9, "Saree": 0.1}, category_alpha=1.0, category_threshold=0.5
    )
    pred, _ = svc._image.predict_category(np.ones(4, np.float32), photo=photo)
    assert pred.label == "Kurta" and pred.restrict  # its own alpha (1: the head alone)
    assert pred.classifier == {"Kurta": 0.9, "Saree": 0.1}  # and threshold (0.99 otherwise)
    plain, _ = svc._image.predict_category(np.ones(4, np.float32))
    assert plain.label == "Saree" and not plain.restrict
    studio = SimpleNamespace(types=None, category_alpha=None, category_threshold=None)
    assert svc._image.predict_category(np.ones(4, np.float32), photo=studio)[0] == plain
