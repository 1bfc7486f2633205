"""Packaged encoders: EfficientNet-Lite0 preprocessing is right (sensible ImageNet classes on
real product photos) and MiniLM gives normalised sentence vectors offline."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.errors import ModelUnavailable
from engine.models.encoders import (
    IMAGE_FEATURE_DIM,
    TEXT_FEATURE_DIM,
    ImageEncoder,
    TextEncoder,
    preprocess_images,
    resolve_device,
)
from engine.models.images import load_image_file
from engine.settings import DEFAULT_SHARED_DATA, SAMPLE_DIR

# Article type -> ImageNet class ids that are a sensible top-1 for a product photo of it.
IMAGENET_EXPECTED: dict[str, set[int]] = {
    "Sports Shoes": {770},  # running shoe
    "Sunglasses": {836, 837},  # sunglass, sunglasses
    "Backpacks": {414},  # backpack
    "Wallets": {893},  # wallet
}


def _real_photos(limit_per_type: int = 2) -> list[tuple[str, Path]]:
    """(article_type, photo) pairs from the sample catalog or, failing that, the shared data."""
    for catalog, images in (
        (SAMPLE_DIR / "catalog.jsonl", SAMPLE_DIR / "images"),
        (DEFAULT_SHARED_DATA / "catalog.jsonl.gz", DEFAULT_SHARED_DATA / "images"),
    ):
        if not catalog.is_file() or not images.is_dir():
            continue
        import gzip

        opener = gzip.open if catalog.suffix == ".gz" else open
        found: dict[str, list[Path]] = {t: [] for t in IMAGENET_EXPECTED}
        with opener(catalog, "rt", encoding="utf-8") as fh:  # type: ignore[operator]
            for line in fh:
                row = json.loads(line)
                kind = row.get("article_type")
                path = images / f"{row.get('id')}.jpg"
                if kind in found and len(found[kind]) < limit_per_type and path.is_file():
                    found[kind].append(path)
                if all(len(v) >= limit_per_type for v in found.values()):
                    break
        pairs = [(t, p) for t, ps in found.items() for p in ps]
        if pairs:
            return pairs
    return []


@pytest.fixture(scope="module")
def image_encoder() -> ImageEncoder:
    return ImageEncoder("cpu", batch_size=4)


def test_preprocess_normalisation() -> None:
    img = Image.new("RGB", (10, 20), (127, 255, 0))
    x = preprocess_images([img], size=16)
    assert x.shape == (1, 3, 16, 16)
    assert torch.allclose(x[0, 0], torch.zeros(16, 16))
    assert torch.allclose(x[0, 1], torch.full((16, 16), 1.0))
    assert torch.allclose(x[0, 2], torch.full((16, 16), -127 / 128))


def test_packaged_classifier_predicts_sensible_imagenet_classes(
    image_encoder: ImageEncoder,
) -> None:
    pairs = _real_photos()
    if not pairs:
        pytest.skip("no sample or shared product photos available")
    logits = image_encoder.logits([load_image_file(p) for _, p in pairs])
    top1 = logits.argmax(axis=1)
    hits = [int(c) in IMAGENET_EXPECTED[t] for (t, _), c in zip(pairs, top1, strict=True)]
    assert np.mean(hits) >= 0.75, list(zip([t for t, _ in pairs], top1.tolist(), strict=True))


def test_image_features_shape_and_batching(image_encoder: ImageEncoder) -> None:
    imgs = [Image.new("RGB", (60, 80), (i * 40, 100, 200)) for i in range(5)]
    feats = image_encoder.features(imgs)
    assert feats.shape == (5, IMAGE_FEATURE_DIM) and feats.dtype == np.float32
    single = image_encoder.features(imgs[3:4])
    assert np.allclose(single[0], feats[3], atol=1e-4)
    assert image_encoder.features([]).shape == (0, IMAGE_FEATURE_DIM)


def test_text_encoder_offline_normalised_and_semantic() -> None:
    enc = TextEncoder("cpu")
    v = enc.encode(["red cotton shirt for men", "a man's red shirt", "black leather wallet"])
    assert v.shape == (3, TEXT_FEATURE_DIM)
    assert np.allclose(np.linalg.norm(v, axis=1), 1.0, atol=1e-5)
    assert v[0] @ v[1] > v[0] @ v[2]
    # Order restored after length-sorted batching.
    assert np.allclose(enc.encode(["black leather wallet"])[0], v[2], atol=1e-5)


def test_missing_weights_and_bad_device(tmp_path: Path) -> None:
    with pytest.raises(ModelUnavailable):
        ImageEncoder("cpu", weights_path=tmp_path / "none.pth")
    with pytest.raises(ModelUnavailable):
        TextEncoder("cpu", model_dir=tmp_path)
    with pytest.raises(ModelUnavailable):
        resolve_device("not-a-device")
    if not torch.cuda.is_available():
        with pytest.raises(ModelUnavailable):
            resolve_device("cuda")
