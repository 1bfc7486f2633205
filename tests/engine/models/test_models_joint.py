"""JointModel: checkpoint round trip, shapes, normalisation, attributes, errors, shipped weights."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.catalog import Product
from engine.errors import InvalidInput, ModelUnavailable
from engine.models.binary import BinaryCoder
from engine.models.features import IMAGE_INPUT_DIM
from engine.models.joint import (
    DEFAULT_CHECKPOINT,
    JointModel,
    build_net,
    load,
    text_for_product,
    visual_description,
)

VOCAB = {"article_type": ["Shirts", "Shoes", "Watches"], "base_colour": ["Black", "Red"]}


def _tiny_model(dim: int = 16) -> JointModel:
    torch.manual_seed(0)
    config = {"dim": dim, "hidden": 32, "image_in": IMAGE_INPUT_DIM, "text_in": 384}
    net = build_net(config, VOCAB)
    rng = np.random.default_rng(0)
    coder = BinaryCoder.fit(rng.standard_normal((200, dim)).astype(np.float32), n_bits=16)
    return JointModel(net, VOCAB, coder, config=config, device="cpu")


def test_checkpoint_round_trip_shapes_and_normalisation(tmp_path: Path) -> None:
    model = _tiny_model()
    path = model.save(tmp_path / "joint.pt")
    loaded = JointModel.load(path, "cpu")
    assert loaded.dim == 16 and loaded.attribute_vocab == VOCAB
    rng = np.random.default_rng(1)
    img_in = rng.standard_normal((5, IMAGE_INPUT_DIM)).astype(np.float32)
    txt_in = rng.standard_normal((4, 384)).astype(np.float32)
    e_img = loaded.embed_image_features(img_in)
    e_txt = loaded.embed_text_features(txt_in)
    assert e_img.shape == (5, 16) and e_txt.shape == (4, 16)
    assert e_img.dtype == np.float32
    assert np.allclose(np.linalg.norm(e_img, axis=1), 1.0, atol=1e-5)
    assert np.allclose(np.linalg.norm(e_txt, axis=1), 1.0, atol=1e-5)
    # float16 storage: the loaded model agrees closely with the original.
    assert np.allclose(model.embed_image_features(img_in), e_img, atol=2e-2)
    assert loaded.codes(e_img).shape == (5, 2)
    assert load(tmp_path, "cpu").dim == 16  # a directory holding joint.pt works too


def test_predict_attributes_structure() -> None:
    model = _tiny_model()
    emb = model.embed_image_features(np.zeros((3, IMAGE_INPUT_DIM), np.float32))
    preds = model.predict_attributes(emb, top_k=None)
    assert len(preds) == 3
    for p in preds:
        assert set(p) == set(VOCAB)
        assert set(p["article_type"]) == set(VOCAB["article_type"])
        assert abs(sum(p["base_colour"].values()) - 1.0) < 1e-4
    top1 = model.predict_attributes(np.zeros((2, IMAGE_INPUT_DIM), np.float32), top_k=1)
    assert all(len(v) == 1 for v in top1[0].values())


def test_invalid_inputs_and_missing_checkpoint(tmp_path: Path) -> None:
    model = _tiny_model()
    with pytest.raises(InvalidInput):
        model.embed_image_features(np.zeros((2, 7), np.float32))
    with pytest.raises(InvalidInput):
        model.embed_text_features(np.zeros(384, np.float32))
    assert model.embed_texts([]).shape == (0, 16)
    assert model.embed_images([]).shape == (0, 16)
    with pytest.raises(ModelUnavailable, match="not found"):
        JointModel.load(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ModelUnavailable):
        JointModel.load(bad)
    other = tmp_path / "other.pt"
    torch.save({"format": "something-else"}, other)
    with pytest.raises(ModelUnavailable, match="not a joint model checkpoint"):
        JointModel.load(other)


def test_text_for_product_uses_title_attributes_and_visual_description() -> None:
    p = Product(
        id="1",
        title="Nike Men Blue Jersey",
        gender="Men",
        article_type="Tshirts",
        base_colour="Blue",
        attributes={"Pattern": "Solid"},
        description="Composition Blue jersey with a polo collar. Wash care Machine wash cold",
    )
    text = text_for_product(p)
    assert text.startswith("Nike Men Blue Jersey. Men, Tshirts, Blue, Solid.")
    assert "polo collar" in text and "Machine wash" not in text
    assert visual_description(None) == ""
    assert text_for_product(Product(id="2", title="Plain")) == "Plain"


@pytest.mark.skipif(not DEFAULT_CHECKPOINT.is_file(), reason="no shipped checkpoint yet")
def test_shipped_checkpoint_embeds_images_and_texts() -> None:
    assert DEFAULT_CHECKPOINT.stat().st_size < 8 * 1024 * 1024
    model = load(None, "cpu")
    assert model.binary is not None and model.binary.dim == model.dim
    assert "article_type" in model.attribute_vocab and "base_colour" in model.attribute_vocab
    arr = np.full((224, 224, 3), 255, np.uint8)
    arr[30:200, 50:170] = (200, 20, 20)
    imgs = [Image.fromarray(arr), Image.new("RGB", (60, 80), (20, 20, 20))]
    e_img = model.embed_images(imgs)
    e_txt = model.embed_texts(["red t-shirt for men", "black leather wallet"])
    assert e_img.shape == e_txt.shape == (2, model.dim)
    assert np.allclose(np.linalg.norm(e_img, axis=1), 1.0, atol=1e-4)
    assert np.allclose(np.linalg.norm(e_txt, axis=1), 1.0, atol=1e-4)
    # Reusing precomputed features gives the same embedding as the one-shot path.
    feats = model.image_features(imgs)
    assert np.allclose(model.embed_image_features(feats), e_img, atol=1e-5)
    preds = model.predict_attributes(feats, top_k=3)
    assert len(preds) == 2 and len(preds[0]["base_colour"]) == 3
    # A red garment on white should look red to the colour-aware head.
    assert "Red" in preds[0]["base_colour"]


def test_colour_head_round_trip_and_photo_colour_averaging(tmp_path: Path) -> None:
    """A checkpoint with a colour head: photos' base colour = the average of the colour head's
    and the attribute head's distributions; embeddings and other attributes are unchanged;
    joint embeddings (no photo inputs) use the attribute head only."""
    from engine.models.joint import build_colour_head

    model = _tiny_model()
    rng = np.random.default_rng(2)
    feats = rng.standard_normal((4, IMAGE_INPUT_DIM)).astype(np.float32)
    before = model.image_attribute_probabilities(feats)
    head = build_colour_head(model.config, VOCAB)
    with torch.no_grad():
        head.net[-1].bias.copy_(torch.tensor([0.0, 50.0]))  # the head is sure: "Red"
    model.colour_head = head.eval()
    model.config["colour_head_weight"] = 0.5
    after = model.image_attribute_probabilities(feats)
    np.testing.assert_allclose(after["article_type"], before["article_type"])
    np.testing.assert_allclose(
        after["base_colour"], 0.5 * before["base_colour"] + 0.5 * np.array([0.0, 1.0]), atol=1e-5
    )
    loaded = JointModel.load(model.save(tmp_path / "joint.pt"), "cpu")
    assert loaded.colour_head is not None
    got = loaded.image_attribute_probabilities(feats)["base_colour"]
    np.testing.assert_allclose(got, after["base_colour"], atol=2e-2)  # float16 storage
    np.testing.assert_allclose(
        loaded.embed_image_features(feats), model.embed_image_features(feats), atol=2e-2
    )
    by_feats = loaded.predict_attributes(feats, top_k=None)
    assert abs(by_feats[0]["base_colour"]["Red"] - float(got[0, 1])) < 1e-5
    emb = loaded.embed_image_features(feats)
    by_emb = loaded.predict_attributes(emb, top_k=None)  # joint vectors: attribute head only
    plain = loaded.attribute_probabilities(emb)["base_colour"]
    assert abs(by_emb[0]["base_colour"]["Red"] - float(plain[0, 1])) < 1e-5


def test_shipped_checkpoint_has_a_colour_head() -> None:
    model = JointModel.load(None, "cpu")
    assert model.colour_head is not None
    assert 0.0 < float(model.config["colour_head_weight"]) <= 1.0
