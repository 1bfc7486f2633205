"""Query-time ONNX Runtime backbones: same embeddings as PyTorch, used by the API loader."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.api.app import default_loaders
from engine.models.accel import onnx_available
from engine.models.joint import JointModel
from engine.settings import ModelSettings, Settings

SAMPLE_IMAGES = Path(__file__).resolve().parents[3] / "sample" / "images"


def test_onnx_runtime_is_installed() -> None:
    # a core dependency: the API and ingest rely on it for CPU speed
    assert onnx_available()


def test_accelerated_model_matches_pytorch() -> None:
    torch_model = JointModel.load(None, "cpu", num_threads=1)
    fast = JointModel.load(None, "cpu", num_threads=1)
    assert fast.accelerate(threads=1) == "image=onnx text=onnx"
    texts = ["black striped tshirt for men", "Roadster Women Navy Blue Slim Fit Shirt"]
    np.testing.assert_allclose(fast.embed_texts(texts), torch_model.embed_texts(texts), atol=1e-3)
    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))[:3]]
    np.testing.assert_allclose(
        fast.embed_images(images), torch_model.embed_images(images), atol=1e-3
    )


def test_api_loader_respects_the_onnx_setting() -> None:
    on = default_loaders(Settings(models=ModelSettings(device="cpu", num_threads=1)))["joint"]()
    off = default_loaders(Settings(models=ModelSettings(device="cpu", num_threads=1, onnx=False)))[
        "joint"
    ]()
    assert type(on.text_encoder).__name__ == "OnnxTextEncoder"
    assert type(off.text_encoder).__name__ == "TextEncoder"


def test_training_feature_extraction_uses_the_equivalent_onnx_backbone() -> None:
    """engine.train.joint extracts image inputs through accelerate_image: same features."""
    from engine.models.accel import OnnxImageBackbone, accelerate_image
    from engine.models.encoders import ImageEncoder
    from engine.models.features import image_inputs

    encoder = ImageEncoder("cpu", num_threads=1)
    fast = accelerate_image(encoder, threads=1)
    assert isinstance(fast, OnnxImageBackbone)
    assert accelerate_image(fast) is fast  # idempotent
    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))[:3]]
    np.testing.assert_allclose(image_inputs(images, fast), image_inputs(images, encoder), atol=1e-3)


def test_onnx_feature_maps_run_in_batches_and_match_pytorch() -> None:
    """The localisation pass over many photos (training, evaluation) runs batch by batch, so
    its memory is one batch's, and gives the PyTorch maps."""
    from engine.models.accel import accelerate_image
    from engine.models.encoders import ImageEncoder

    encoder = ImageEncoder("cpu", num_threads=1, batch_size=2)
    fast = accelerate_image(encoder, threads=1)
    images = [Image.open(p).convert("RGB") for p in sorted(SAMPLE_IMAGES.glob("*.jpg"))[:5]]
    maps = fast.feature_maps(images)
    assert maps.shape == (5, 1280, 7, 7) and maps.dtype == np.float32
    np.testing.assert_allclose(maps, encoder.feature_maps(images), atol=2e-3)
    np.testing.assert_allclose(maps[3:], fast.feature_maps(images[3:]), atol=1e-5)
    assert fast.feature_maps([]).shape[0] == 0
