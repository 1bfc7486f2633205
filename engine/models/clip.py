"""Pluggable CLIP-style encoder from a LOCAL Hugging Face checkpoint directory.

Point ``ModelSettings.clip_checkpoint`` at a directory saved with ``save_pretrained`` holding a
``CLIPModel`` (``config.json`` + weights), its tokenizer and image processor config. Nothing is
ever downloaded (``local_files_only=True``). The interface matches the joint model:
``embed_images`` / ``embed_texts`` return L2-normalised float32 arrays of shape (N, ``dim``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from engine.errors import ModelUnavailable
from engine.models.crop import crop_main_object
from engine.models.encoders import apply_num_threads, resolve_device

logger = logging.getLogger(__name__)


def _pooled(out: Any) -> torch.Tensor:
    """``get_*_features`` returns a tensor (transformers 4) or an output object (5)."""
    if isinstance(out, torch.Tensor):
        return out
    pooled = getattr(out, "pooler_output", None)
    if pooled is None:
        raise ModelUnavailable("CLIP model returned no pooled features")
    return pooled


class ClipEncoder:
    """A CLIP-style dual encoder with the ``embed_images`` / ``embed_texts`` interface."""

    def __init__(
        self,
        model_dir: Path,
        device: str = "auto",
        *,
        batch_size: int = 32,
        num_threads: int | None = None,
        crop: bool = True,
        max_length: int = 77,
    ) -> None:
        apply_num_threads(num_threads)
        self.model_dir = Path(model_dir)
        self.device = resolve_device(device)
        self.batch_size = batch_size
        self.crop = crop
        if not self.model_dir.is_dir():
            raise ModelUnavailable(
                f"CLIP checkpoint directory not found: {self.model_dir}", path=str(self.model_dir)
            )
        if not (self.model_dir / "config.json").is_file():
            raise ModelUnavailable(
                f"{self.model_dir} is not a Hugging Face checkpoint (no config.json)",
                path=str(self.model_dir),
            )
        from transformers import AutoTokenizer, CLIPImageProcessor, CLIPModel

        try:
            self.model = CLIPModel.from_pretrained(str(self.model_dir), local_files_only=True)
            self.tokenizer = AutoTokenizer.from_pretrained(
                str(self.model_dir), local_files_only=True
            )
            self.image_processor = CLIPImageProcessor.from_pretrained(
                str(self.model_dir), local_files_only=True
            )
        except Exception as exc:  # noqa: BLE001 - any loading failure means: unusable directory
            raise ModelUnavailable(
                f"cannot load a CLIP model from {self.model_dir}: {type(exc).__name__}: {exc}",
                path=str(self.model_dir),
            ) from exc
        self.model = self.model.eval().to(self.device)
        model_max = int(getattr(self.model.config.text_config, "max_position_embeddings", 77))
        self.max_length = min(max_length, model_max)

    @property
    def dim(self) -> int:
        dim = self.model.config.projection_dim
        if dim is None:
            raise ModelUnavailable("the CLIP checkpoint's config has no projection_dim")
        return int(dim)

    @torch.inference_mode()
    def embed_images(self, images: Sequence[Image.Image]) -> np.ndarray:
        if len(images) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(images), self.batch_size):
            batch = [
                crop_main_object(img) if self.crop else img.convert("RGB")
                for img in images[start : start + self.batch_size]
            ]
            pixels = self.image_processor(images=batch, return_tensors="pt")["pixel_values"]
            feats = _pooled(self.model.get_image_features(pixel_values=pixels.to(self.device)))
            out.append(torch.nn.functional.normalize(feats, dim=-1).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)

    @torch.inference_mode()
    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = []
        for start in range(0, len(texts), self.batch_size):
            enc = self.tokenizer(
                [str(t) for t in texts[start : start + self.batch_size]],
                padding=True,
                truncation=True,
                max_length=self.max_length,
                return_tensors="pt",
            )
            feats = _pooled(
                self.model.get_text_features(
                    input_ids=enc["input_ids"].to(self.device),
                    attention_mask=enc["attention_mask"].to(self.device),
                )
            )
            out.append(torch.nn.functional.normalize(feats, dim=-1).float().cpu().numpy())
        return np.concatenate(out).astype(np.float32)


def load_clip(model_dir: Path | None, device: str = "auto", **kwargs: Any) -> ClipEncoder:
    """Load the configured CLIP checkpoint; ModelUnavailable when none is configured."""
    if model_dir is None:
        raise ModelUnavailable("no CLIP checkpoint configured (models.clip_checkpoint)")
    return ClipEncoder(Path(model_dir), device, **kwargs)
