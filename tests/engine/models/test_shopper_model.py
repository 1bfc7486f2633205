"""Shopper-photo localisation and the two-granularity embedding, with a stand-in backbone."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from engine.models.features import image_inputs
from engine.models.joint import _Tower
from engine.models.shopper import Objectness, ShopperModel
from engine.models.shopper_box import box_from_map

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "images"


class FakeBackbone:
    """Maps whose channel 0 is the cell's darkness (objects are darker than the backgrounds
    used here); pooled features = the maps' mean, as the real backbone's are."""

    def feature_maps(self, images: list[Image.Image]) -> np.ndarray:
        out = np.zeros((len(images), 1280, 7, 7), np.float32)
        for i, img in enumerate(images):
            grey = np.asarray(img.convert("L").resize((7, 7), Image.Resampling.BOX), np.float32)
            out[i, 0] = 1.0 - grey / 255.0
            out[i, 1] = grey.mean() / 255.0
        return out

    def features(self, images: list[Image.Image]) -> np.ndarray:
        return self.feature_maps(images).mean(axis=(2, 3))


def _darkness_head() -> Objectness:
    head = Objectness()
    with torch.no_grad():
        head.linear.weight.zero_()
        head.linear.weight[0, 0] = 20.0
        head.linear.bias.fill_(-8.0)
    return head


def test_box_from_map_covers_the_hot_cells_and_none_when_cold() -> None:
    prob = np.zeros((7, 7), np.float32)
    prob[1:3, 4:6] = 1.0
    box, mask = box_from_map(prob, 224, 0.5, 0.0)  # type: ignore[misc]
    left, top, right, bottom = box
    assert 100 < left < 4 * 32 + 10 and right > 5 * 32 and top < 2 * 32 and bottom < 4 * 32
    assert mask.shape == (224, 224) and mask[60, 150]
    assert box_from_map(np.zeros((7, 7)), 224, 0.5, 0.0) is None


def test_studio_photo_keeps_todays_inputs() -> None:
    img = Image.open(SAMPLE / "10018.jpg").convert("RGB")
    enc = FakeBackbone()
    loc = ShopperModel(_darkness_head(), None).locate([img], enc)[0]
    assert loc.source == "background"
    np.testing.assert_allclose(loc.object_inputs, image_inputs([img], enc)[0], rtol=1e-5)
    np.testing.assert_array_equal(loc.object_inputs, loc.whole_inputs)


def test_cluttered_photo_is_cropped_to_the_object() -> None:
    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(200, 30, (260, 300, 3)), 0, 255).astype(np.uint8)  # no uniform bg
    arr[60:200, 150:250] = 20  # a dark garment
    photo, truth = Image.fromarray(arr), (150, 60, 250, 200)
    model = ShopperModel(_darkness_head(), None)
    loc = model.locate([photo], FakeBackbone())[0]
    assert loc.source == "objectness"
    l, t, r, b = loc.box  # noqa: E741
    tl, tt, tr, tb = truth
    inter = max(0, min(r, tr) - max(l, tl)) * max(0, min(b, tb) - max(t, tt))
    assert inter / ((tr - tl) * (tb - tt)) > 0.8  # the object is inside the box
    assert (r - l) * (b - t) < 0.5 * 300 * 260  # and the box is not the whole photo
    assert not np.array_equal(loc.object_inputs, loc.whole_inputs)
    off = model.locate([photo], FakeBackbone(), localise=False)[0]
    assert off.source == "full" and off.box == (0, 0, 300, 260)


def test_fusion_and_checkpoint_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tower = _Tower(1445, 32, 16).eval()
    model = ShopperModel(_darkness_head(), tower, {"object_weight": 0.75})
    e_o = np.eye(16, dtype=np.float32)[:2]
    e_w = np.eye(16, dtype=np.float32)[2:4]
    fused = model.fuse(e_o, e_w)
    np.testing.assert_allclose(np.linalg.norm(fused, axis=1), 1.0, rtol=1e-5)
    assert fused[0, 0] > fused[0, 2] > 0  # more object than whole photo
    loaded = ShopperModel.load(model.save(tmp_path / "shopper.pt"))
    x = np.random.default_rng(0).normal(size=(3, 1445)).astype(np.float32)

    class J:
        image_input_dim, dim = 1445, 16

    assert loaded.config["object_weight"] == 0.75 and loaded.fits(J())
    np.testing.assert_allclose(loaded.tower_embed(J(), x), model.tower_embed(J(), x), atol=2e-2)


def test_query_encoder_uses_the_located_object_and_drops_colour_off_studio() -> None:
    from engine.search.query_encoder import QueryEncoder

    class Joint:
        image_encoder = FakeBackbone()
        image_input_dim, dim = 1445, 4
        attribute_vocab = {"article_type": ["Tshirts", "Jeans"], "base_colour": ["Red", "Blue"]}

        def embed_texts(self, texts: list[str]) -> np.ndarray:  # marks a model, not a loader
            raise AssertionError("not used")

        def embed_image_features(self, x: np.ndarray) -> np.ndarray:
            v = np.asarray(x[:, :4], np.float32) + 1e-3
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        def image_features(self, images: list[Image.Image]) -> np.ndarray:
            return image_inputs(images, self.image_encoder)

        def image_attribute_probabilities(self, feats: np.ndarray, emb: np.ndarray):
            n = len(emb)
            return {
                "article_type": np.tile([0.9, 0.1], (n, 1)),
                "base_colour": np.tile([0.5, 0.5], (n, 1)),
            }

    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(200, 30, (260, 300, 3)), 0, 255).astype(np.uint8)
    arr[60:200, 150:250] = 20
    shopper = ShopperModel(_darkness_head(), None)
    vec, dist, located = QueryEncoder(Joint(), shopper=lambda: shopper).embed_photo(
        Image.fromarray(arr)
    )
    assert located.source == "objectness" and vec.shape == (4,)
    assert dist is not None and set(dist) == {"article_type"}  # colour left out off studio
    studio = Image.open(SAMPLE / "10018.jpg").convert("RGB")
    _, dist2, loc2 = QueryEncoder(Joint(), shopper=lambda: shopper).embed_photo(studio)
    assert loc2.source == "background" and set(dist2) == {"article_type", "base_colour"}
    _, dist3, loc3 = QueryEncoder(Joint()).embed_photo(Image.fromarray(arr))
    assert loc3 is None and set(dist3) == {"article_type", "base_colour"}  # no shopper model


def test_uniform_dark_background_is_not_a_studio_shot() -> None:
    arr = np.full((260, 300, 3), (90, 60, 40), np.uint8)  # a flat brown floor
    arr[60:200, 150:250] = 230  # a light garment
    model = ShopperModel(_darkness_head(), None)
    assert not model.is_studio(Image.fromarray(arr))[0]
    lenient = ShopperModel(_darkness_head(), None, {"studio_min_level": 0.0})
    assert lenient.is_studio(Image.fromarray(arr))[0]  # the uniformity check alone passes it
    assert model.is_studio(Image.open(SAMPLE / "10018.jpg").convert("RGB"))[0]


def test_type_head_feeds_the_category_step_off_studio_and_round_trips(tmp_path: Path) -> None:
    from engine.models.shopper import TypeHead

    class Joint:
        image_input_dim, dim = 1445, 16
        attribute_vocab = {"article_type": ["Tshirts", "Jeans", "Caps"]}

        def embed_image_features(self, x: np.ndarray) -> np.ndarray:
            v = np.asarray(x[:, :16], np.float32) + 1e-3
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        def attribute_probabilities(self, emb: np.ndarray) -> dict[str, np.ndarray]:
            return {"article_type": np.tile([0.2, 0.2, 0.6], (len(emb), 1))}

    torch.manual_seed(0)
    tower = _Tower(1445, 32, 16).eval()
    head = TypeHead(2 * 16 + 2 * 1445, 8, 3).eval()
    with torch.no_grad():
        head.net[-1].weight.zero_()
        head.net[-1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))  # always "Tshirts"
    config = {"type_weight": 0.5, "category_alpha": 0.8, "category_threshold": 0.3}
    model = ShopperModel(_darkness_head(), tower, config, head)
    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(200, 30, (260, 300, 3)), 0, 255).astype(np.uint8)
    arr[60:200, 150:250] = 20
    studio = Image.open(SAMPLE / "10018.jpg").convert("RGB")
    located = model.locate([Image.fromarray(arr), studio], FakeBackbone())
    emb, obj, out = model.encode(Joint(), located)
    assert emb.shape == (2, 16) and obj.shape == (2, 1445)
    shopper_photo, studio_photo = out
    assert studio_photo.types is None and studio_photo.category_alpha is None
    assert shopper_photo.category_alpha == 0.8 and shopper_photo.category_threshold == 0.3
    types = shopper_photo.types
    assert types is not None and max(types, key=types.__getitem__) == "Tshirts"
    assert abs(sum(types.values()) - 1.0) < 1e-4 and types["Caps"] > types["Jeans"]  # mixed
    loaded = ShopperModel.load(model.save(tmp_path / "shopper.pt"))
    assert loaded.type_head is not None and loaded.fits(Joint())
    again = loaded.encode(Joint(), located)[2][0].types
    assert again is not None and abs(again["Tshirts"] - types["Tshirts"]) < 1e-2
    Joint.attribute_vocab = {"article_type": ["Tshirts", "Jeans"]}
    assert not loaded.fits(Joint())  # the head's types are not this model's


def test_a_weak_map_falls_back_to_its_strongest_cells() -> None:
    head = _darkness_head()
    with torch.no_grad():
        head.linear.bias.fill_(-19.3)  # the garment's cells reach ~0.3, under the threshold
    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(200, 30, (260, 300, 3)), 0, 255).astype(np.uint8)
    arr[60:200, 150:250] = 20
    photo = Image.fromarray(arr)
    assert (
        ShopperModel(head, None, {"threshold": 0.6}).locate([photo], FakeBackbone())[0].source
        == "full"
    )
    loc = ShopperModel(head, None, {"threshold": 0.6, "fallback_ratio": 0.8}).locate(
        [photo], FakeBackbone()
    )[0]
    assert loc.source == "objectness" and loc.box[0] >= 100 and loc.box[2] <= 300
