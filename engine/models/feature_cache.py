"""A key -> feature-vector store in one ``.npz`` file (frozen backbone outputs).

Backbone features are the dominant CPU cost of training, evaluation and ingest, and they depend
only on the input and the frozen backbone, not on the trained heads: caching them by content
lets a retrained head re-ingest a catalog without re-running MiniLM, and lets ingest reuse the
features training already computed. Text features are keyed by :func:`text_key` (sha1 of the
exact text the backbone reads), the scheme ``engine.train.features`` uses.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

FEATURE_VERSION = "v1"  # bump when crop/colour/backbone preprocessing changes


def text_key(text: str) -> str:
    """Cache key of a text: sha1 hex digest of its UTF-8 bytes."""
    return hashlib.sha1(text.encode("utf-8")).hexdigest()


def open_text_cache(folder: Path) -> FeatureCache:
    """The shared MiniLM text feature cache in ``folder`` (``text_minilm_<version>.npz``, the
    file ``python -m engine.train joint`` fills)."""
    from engine.models.encoders import TEXT_FEATURE_DIM

    return FeatureCache(Path(folder) / f"text_minilm_{FEATURE_VERSION}.npz", TEXT_FEATURE_DIM)


class FeatureCache:
    """A key -> vector store in a single npz file."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self._keys: list[str] = []
        self._rows: list[np.ndarray] = []
        self._index: dict[str, int] = {}
        self._dirty = False
        if self.path.is_file():
            try:
                with np.load(self.path, allow_pickle=False) as data:
                    keys = [str(k) for k in data["keys"]]
                    feats = np.asarray(data["feats"], dtype=np.float32)
                if feats.shape == (len(keys), dim):
                    self._keys = keys
                    self._rows = list(feats)
                    self._index = {k: i for i, k in enumerate(keys)}
                else:
                    logger.warning(
                        "ignoring feature cache %s with shape %s", self.path, feats.shape
                    )
            except (OSError, ValueError, KeyError) as exc:
                logger.warning("ignoring unreadable feature cache %s: %s", self.path, exc)

    def __contains__(self, key: str) -> bool:
        return key in self._index

    def __len__(self) -> int:
        return len(self._keys)

    def add(self, keys: Sequence[str], feats: np.ndarray) -> None:
        self._dirty = self._dirty or len(keys) > 0
        for k, row in zip(keys, feats, strict=True):
            if k in self._index:
                self._rows[self._index[k]] = row
            else:
                self._index[k] = len(self._keys)
                self._keys.append(k)
                self._rows.append(row)

    def get(self, keys: Sequence[str]) -> np.ndarray:
        if not keys:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._rows[self._index[k]] for k in keys]).astype(np.float32)

    def save(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.stem + ".tmp.npz")
        feats = (
            np.stack(self._rows).astype(np.float32)
            if self._rows
            else np.zeros((0, self.dim), dtype=np.float32)
        )
        np.savez(tmp, keys=np.asarray(self._keys, dtype=str), feats=feats)
        tmp.replace(self.path)
        self._dirty = False

    @property
    def dirty(self) -> bool:
        """True when entries were added since the file was read or last saved."""
        return self._dirty
