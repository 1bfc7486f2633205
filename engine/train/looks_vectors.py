"""Item vectors for training and evaluating the compatibility model, computed the way ingest
computes the product documents' vectors.

Each product gets the :class:`~engine.models.joint.JointModel` text embedding of
``text_for_product`` and, when ``<id>.jpg`` exists in the photo folder, the image embedding;
its ``joint`` vector is :func:`engine.documents.joint_embeddings` of the two (what ingest
stores as ``joint_embedding``). The expensive backbone features are cached under
``.cache/features`` (shared with the joint model's training), so a second run only applies
the trained heads.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.catalog import Product
from engine.documents import joint_embeddings

logger = logging.getLogger(__name__)


@dataclass
class ItemVectors:
    """Row-aligned vectors of some products: text, image (zeros where none) and joint."""

    ids: list[str]
    text: np.ndarray
    image: np.ndarray
    has_image: np.ndarray
    joint: np.ndarray
    row: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.row:
            self.row = {i: r for r, i in enumerate(self.ids)}

    def __len__(self) -> int:
        return len(self.ids)

    def __contains__(self, item_id: object) -> bool:
        return item_id in self.row

    def rows(self, ids: Sequence[str]) -> np.ndarray:
        return np.asarray([self.row[i] for i in ids], dtype=np.int64)

    def get(self, ids: Sequence[str], kind: str = "joint") -> np.ndarray:
        arr: np.ndarray = getattr(self, kind)
        return arr[self.rows(ids)]

    @classmethod
    def from_arrays(
        cls, ids: Sequence[str], text: np.ndarray, image: np.ndarray | None = None
    ) -> ItemVectors:
        text = np.asarray(text, dtype=np.float32)
        if image is None:
            image = np.zeros_like(text)
            has = np.zeros(len(ids), dtype=bool)
        else:
            image = np.asarray(image, dtype=np.float32)
            has = np.linalg.norm(image, axis=1) > 0
        return cls(list(ids), text, image, has, joint_embeddings(text, image, has))


def cached_texts(
    texts: Sequence[str],
    encoder_factory: Callable[[], Any],
    cache_dir: Path,
) -> np.ndarray:
    """MiniLM features of ``texts``: read from the shared text cache (written by the joint
    model's training), the rest computed into our own cache file, so that two processes never
    rewrite the same cache file (a rewrite drops the other process's new entries)."""
    from engine.models.encoders import TEXT_FEATURE_DIM
    from engine.models.feature_cache import open_text_cache, text_key
    from engine.train.features import cached_text_features

    shared = open_text_cache(cache_dir)
    keys = [text_key(t) for t in texts]
    out = np.zeros((len(texts), TEXT_FEATURE_DIM), dtype=np.float32)
    have = [i for i, k in enumerate(keys) if k in shared]
    if have:
        out[have] = shared.get([keys[i] for i in have])
    todo = [i for i, k in enumerate(keys) if k not in shared]
    if todo:
        out[todo] = cached_text_features(
            [texts[i] for i in todo], encoder_factory, name="text_minilm_looks", cache_dir=cache_dir
        )
    return out


def compute_item_vectors(
    products: Sequence[Product],
    joint: Any,
    images_dir: Path | None = None,
    *,
    cache_dir: Path | None = None,
    document_text: Any = None,
    image_files: Mapping[str, Path] | None = None,
) -> ItemVectors:
    """Vectors of ``products`` with a loaded JointModel (backbone features cached on disk).
    ``document_text``: the documents' text backbone ingest uses when it is not MiniLM (the
    static encoder, :func:`engine.models.static_text.document_text_encoder`), so these vectors
    are the ones the products index holds. ``image_files`` (item id -> photo under
    ``images_dir``) for catalogs whose photos are not named ``<id>.jpg``."""
    from engine.train.features import DEFAULT_CACHE_DIR, cached_image_files, cached_image_inputs

    cache = Path(cache_dir) if cache_dir is not None else DEFAULT_CACHE_DIR
    ids = [p.id for p in products]
    texts = [joint.text_for_product(p) for p in products]
    if document_text is not None:
        features = document_text.encode(texts)
    else:
        features = cached_texts(texts, lambda: joint.text_encoder, cache)
    text = joint.embed_text_features(features)
    image = np.zeros_like(text)
    if images_dir is not None and Path(images_dir).is_dir():
        if image_files is not None:
            wanted = {i: image_files[i] for i in ids if i in image_files}
            img_ids, img_feats = cached_image_files(
                wanted, Path(images_dir), lambda: joint.image_encoder, cache_dir=cache
            )
        else:
            img_ids, img_feats = cached_image_inputs(
                ids, Path(images_dir), lambda: joint.image_encoder, cache_dir=cache
            )
        if img_ids:
            row = {i: r for r, i in enumerate(ids)}
            image[[row[i] for i in img_ids]] = joint.embed_image_features(img_feats)
    logger.info(
        "item vectors: %d products, %d with a photo",
        len(ids),
        int((np.linalg.norm(image, axis=1) > 0).sum()),
    )
    return ItemVectors.from_arrays(ids, text, image)
