"""The model side of ingest, behind a small protocol so the pipeline is testable.

:class:`JointEncoder` wraps :class:`engine.models.joint.JointModel`. Its image path is split so
the expensive per-image CPU work (main-object crop + colour descriptor,
:func:`engine.models.features.crop_and_colour`) runs in the decode worker threads and only the
batched backbone + heads run in the encode stage; the result equals
``JointModel.embed_images`` (checked in the tests).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
from PIL import Image

from engine.catalog import Product
from engine.models.checkpoints import resolve_checkpoint
from engine.models.feature_cache import FeatureCache, open_text_cache, text_key
from engine.settings import Settings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PreparedImage:
    """What the worker threads hand to the encoder for one image."""

    crop: Image.Image  # square main-object crop
    colour: np.ndarray  # colour descriptor


class Encoder(Protocol):
    model_version: str
    dim: int

    def text_for(self, product: Product) -> str: ...

    def prepare_image(self, image: Image.Image) -> PreparedImage: ...

    def embed_prepared(self, images: Sequence[PreparedImage]) -> np.ndarray: ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray: ...

    def attributes(
        self, embeddings: np.ndarray, top_k: int
    ) -> list[dict[str, dict[str, float]]]: ...

    def codes(self, embeddings: np.ndarray) -> np.ndarray | None: ...


def joint_checkpoint_path(settings: Settings) -> Path:
    """The joint checkpoint file the settings name (default: the shipped one)."""
    from engine.models.versions import JOINT_CHECKPOINT

    return resolve_checkpoint(settings.models.joint_path, JOINT_CHECKPOINT)


def encoder_version(settings: Settings) -> str:
    """The model version ingest stamps on documents with these settings
    (:func:`engine.models.versions.document_model_version`)."""
    from engine.models.versions import document_model_version

    ms = settings.models
    return document_model_version(ms.joint_path, ms.document_text_encoder, ms.static_text_weights)


class JointEncoder:
    """:class:`Encoder` over the trained joint model (loaded once per process)."""

    def __init__(
        self,
        model: Any,
        model_version: str,
        *,
        image_backbone: Any = None,
        text_backbone: Any = None,
        text_cache: FeatureCache | None = None,
        save_text_cache: bool = True,
        document_text: Any = None,
    ) -> None:
        self.model = model
        # documents' text backbone when it is not MiniLM (the static encoder): no feature cache
        self.document_text = document_text
        # frozen MiniLM features by text_key(text): hits skip the text backbone entirely
        self.text_cache = text_cache
        self.save_text_cache = save_text_cache
        self.model_version = model_version
        self.dim = int(model.dim)
        # objects with .features(images) / .encode(texts); default: the model's own encoders
        self._image_backbone = image_backbone
        self._text_backbone = text_backbone

    @property
    def image_backbone(self) -> Any:
        return self._image_backbone or self.model.image_encoder

    @property
    def text_backbone(self) -> Any:
        return self._text_backbone or self.model.text_encoder

    @property
    def runtime(self) -> str:
        """Which runtime runs each backbone, e.g. 'image=onnx text=static'."""
        from engine.models.accel import runtime_label

        return runtime_label(self.image_backbone, self.document_text or self.text_backbone)

    @classmethod
    def load(
        cls,
        settings: Settings,
        *,
        batch_size: int | None = None,
        accelerate: bool = True,
        feature_cache: Path | None = None,
    ) -> JointEncoder:
        """Load the joint model once; ``accelerate``: run the frozen backbones with ONNX
        Runtime on CPU when available and numerically equivalent (see :mod:`engine.models.accel`);
        ``feature_cache``: a folder of backbone feature caches (``text_minilm_v1.npz``, the file
        ``python -m engine.train joint`` also fills) read before, and updated after, encoding."""
        from engine.models.joint import JointModel

        model = JointModel.load(
            joint_checkpoint_path(settings),
            settings.models.device,
            batch_size=batch_size or settings.models.batch_size,
            num_threads=settings.models.num_threads,
        )
        encoder = cls.over_model(model, settings, feature_cache=feature_cache)
        encoder.warm_up()
        if accelerate and settings.models.onnx:
            model.accelerate(settings.models.num_threads)
        logger.info("joint model %s loaded (%s)", encoder.model_version, encoder.runtime)
        return encoder

    @classmethod
    def over_model(
        cls,
        model: Any,
        settings: Settings,
        *,
        feature_cache: Path | None = None,
        save_text_cache: bool = True,
    ) -> JointEncoder:
        """The encoder ingest runs over an already loaded joint ``model``: documents' text
        through the encoder the settings name (the static one by default), and, with MiniLM
        documents, MiniLM features reused by content from ``feature_cache`` (written back at the
        end unless ``save_text_cache`` is False)."""
        from engine.models.static_text import document_text_encoder

        ms = settings.models
        document_text = document_text_encoder(
            ms.document_text_encoder, model.text_encoder, ms.static_text_weights
        )
        text_cache = None
        if feature_cache is not None and document_text is None:
            text_cache = open_text_cache(feature_cache)
        return cls(
            model,
            encoder_version(settings),
            text_cache=text_cache,
            save_text_cache=save_text_cache,
            document_text=document_text,
        )

    def warm_up(self) -> None:
        """Load both backbones now (they load lazily) so the first batch is not slowed."""
        _ = self.model.image_encoder, self.model.text_encoder

    def text_for(self, product: Product) -> str:
        return str(self.model.text_for_product(product))

    def prepare_image(self, image: Image.Image) -> PreparedImage:
        from engine.models.features import crop_and_colour

        crop, colour = crop_and_colour(image)
        return PreparedImage(crop, np.asarray(colour, dtype=np.float32))

    def embed_prepared(self, images: Sequence[PreparedImage]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        backbone = self.image_backbone.features([p.crop for p in images])
        feats = np.concatenate([backbone, np.stack([p.colour for p in images])], axis=1)
        return np.asarray(self.model.embed_image_features(feats.astype(np.float32)))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        if len(texts) == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        texts = [str(t) for t in texts]
        cache = self.text_cache
        if self.document_text is not None:
            features = self.document_text.encode(texts)
        elif cache is None:
            features = self.text_backbone.encode(texts)
        else:
            keys = [text_key(t) for t in texts]
            missing = list(dict.fromkeys(k for k in keys if k not in cache))
            if missing:
                first = {k: t for k, t in zip(keys, texts, strict=True)}
                cache.add(missing, self.text_backbone.encode([first[k] for k in missing]))
            features = cache.get(keys)
        return np.asarray(self.model.embed_text_features(features))

    def flush(self) -> None:
        """Persist new entries of the text feature cache (called once at the end of a run)."""
        if self.text_cache is not None and self.save_text_cache and self.text_cache.dirty:
            self.text_cache.save()
            logger.info(
                "text feature cache %s: %d entries", self.text_cache.path, len(self.text_cache)
            )

    def attributes(self, embeddings: np.ndarray, top_k: int) -> list[dict[str, dict[str, float]]]:
        if embeddings.shape[0] == 0:
            return []
        return list(self.model.predict_attributes(embeddings, top_k=top_k))

    def codes(self, embeddings: np.ndarray) -> np.ndarray | None:
        if getattr(self.model, "binary", None) is None or embeddings.shape[0] == 0:
            return None
        return np.asarray(self.model.codes(embeddings))
