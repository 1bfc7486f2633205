"""The fine-tuned last stages of the image backbone (engine.models.backbone_tail): grafting
them onto the real EfficientNet-Lite0, checkpoint round trip, and the crop pass that uses it."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import ConfigError
from engine.models.backbone_tail import BackboneTail, apply_tail, tail_state
from engine.models.encoders import ImageEncoder
from engine.models.shopper import Objectness, ShopperModel

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "images"


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    return ImageEncoder("cpu", num_threads=1)


def photos() -> list[Image.Image]:
    return [Image.open(p).convert("RGB") for p in sorted(SAMPLE.glob("*.jpg"))[:3]]


def nudged(enc: ImageEncoder, split: int) -> BackboneTail:
    state = tail_state(enc.model, split)
    gen = torch.Generator().manual_seed(0)
    for k, v in state.items():
        if k.endswith("weight") and v.ndim == 4:
            state[k] = v + 0.05 * torch.randn(v.shape, generator=gen) * v.std()
    return BackboneTail(split, state)


def test_the_tail_covers_the_blocks_from_the_split_and_the_head(encoder: ImageEncoder) -> None:
    state = tail_state(encoder.model, 15)
    assert state and all(k.startswith(("_blocks.15.", "_conv_head.", "_bn1.")) for k in state)
    assert set(tail_state(encoder.model, 11)) > set(state)


def test_grafting_changes_only_the_adapted_encoder(encoder: ImageEncoder) -> None:
    imgs = photos()
    before = encoder.features(imgs)
    same = BackboneTail(11, tail_state(encoder.model, 11)).encoder(encoder)
    np.testing.assert_allclose(same.features(imgs), before, atol=1e-5)
    tail = nudged(encoder, 11)
    adapted = tail.encoder(encoder)
    assert adapted is tail.encoder(encoder)  # built once per base encoder
    assert float(np.abs(adapted.features(imgs) - before).max()) > 1e-3
    np.testing.assert_array_equal(encoder.features(imgs), before)  # the base is untouched


def test_a_tail_that_does_not_fit_is_a_clear_error(encoder: ImageEncoder) -> None:
    state = tail_state(encoder.model, 11)
    with pytest.raises(ConfigError, match="does not fit"):
        apply_tail(encoder.model, 12, state)
    bad = dict(state)
    key = next(k for k in bad if k.endswith("weight"))
    bad[key] = torch.zeros(3)
    with pytest.raises(ConfigError, match="does not fit"):
        apply_tail(encoder.model, 11, bad)
    with pytest.raises(ConfigError):
        tail_state(encoder.model, 0)


def test_shopper_checkpoint_keeps_the_tail_and_the_crop_pass_uses_it(
    encoder: ImageEncoder, tmp_path: Path
) -> None:
    rng = np.random.default_rng(0)
    arr = np.clip(rng.normal(200, 30, (260, 300, 3)), 0, 255).astype(np.uint8)
    arr[60:200, 150:250] = Image.open(SAMPLE / "10018.jpg").convert("RGB").resize((100, 140))
    photo = Image.fromarray(arr)
    head = Objectness()
    with torch.no_grad():  # every cell is "object": the box is the whole square
        head.linear.weight.zero_()
        head.linear.bias.fill_(5.0)
    tail = nudged(encoder, 11)
    model = ShopperModel(head, None, {"threshold": 0.5}, backbone_tail=tail)
    loaded = ShopperModel.load(model.save(tmp_path / "shopper.pt"))
    assert loaded.backbone_tail is not None and loaded.backbone_tail.split == 11
    a = loaded.locate([photo], encoder)[0]
    plain = ShopperModel(head, None, {"threshold": 0.5}).locate([photo], encoder)[0]
    assert a.source == plain.source == "objectness"
    np.testing.assert_array_equal(a.whole_inputs, plain.whole_inputs)  # packaged backbone
    assert float(np.abs(a.object_inputs - plain.object_inputs).max()) > 1e-3
    # float16 weights in the checkpoint: the loaded tail gives nearly the same features
    b = model.locate([photo], encoder)[0]
    np.testing.assert_allclose(a.object_inputs, b.object_inputs, atol=5e-2)
