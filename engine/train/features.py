"""Cached backbone features (the dominant cost of training and evaluation on CPU).

Image inputs (:func:`engine.models.features.image_inputs`) are cached per image file in one npz
per source (``.cache/features/<name>.npz`` with ``keys`` = image file names and ``feats``);
missing entries are computed in chunks and the cache is rewritten after each chunk, so an
interrupted run resumes. Text features are cached the same way keyed by the sha1 of the text.
"""

from __future__ import annotations

import hashlib
import logging
import tarfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.errors import InvalidImage
from engine.models.features import IMAGE_INPUT_DIM, image_inputs
from engine.models.images import decode_image, load_image_file
from engine.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "features"
FEATURE_VERSION = "v1"  # bump when crop/colour/backbone preprocessing changes


class FeatureCache:
    """A key -> vector store in a single npz file."""

    def __init__(self, path: Path, dim: int) -> None:
        self.path = Path(path)
        self.dim = dim
        self._keys: list[str] = []
        self._rows: list[np.ndarray] = []
        self._index: dict[str, int] = {}
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


def _source_name(prefix: str, source: Path) -> str:
    digest = hashlib.sha1(str(Path(source).resolve()).encode("utf-8")).hexdigest()[:10]
    return f"{prefix}_{FEATURE_VERSION}_{digest}.npz"


def image_cache_path(images_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    return Path(cache_dir) / _source_name("img224", images_dir)


def _compute_into(
    cache: FeatureCache,
    todo: list[str],
    load: Callable[[str], Image.Image | None],
    encoder_factory: Callable[[], object],
    chunk: int,
    desc: str,
) -> None:
    if not todo:
        return
    encoder = encoder_factory()
    bar = tqdm(total=len(todo), desc=desc, unit="img")
    for start in range(0, len(todo), chunk):
        keys, imgs = [], []
        for key in todo[start : start + chunk]:
            img = load(key)
            if img is not None:
                keys.append(key)
                imgs.append(img)
        if imgs:
            cache.add(keys, image_inputs(imgs, encoder))  # type: ignore[arg-type]
            cache.save()
        bar.update(min(chunk, len(todo) - start))
    bar.close()


def cached_image_inputs(
    item_ids: Sequence[str],
    images_dir: Path,
    encoder_factory: Callable[[], object],
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    chunk: int = 256,
) -> tuple[list[str], np.ndarray]:
    """Image inputs of the items whose ``<id>.jpg`` exists and decodes; (ids, (N, D) array)."""
    images_dir = Path(images_dir)
    cache = FeatureCache(image_cache_path(images_dir, cache_dir), IMAGE_INPUT_DIM)
    present = [i for i in item_ids if (images_dir / f"{i}.jpg").is_file()]
    todo = [i for i in present if f"{i}.jpg" not in cache]

    def load(item_id: str) -> Image.Image | None:
        try:
            return load_image_file(images_dir / f"{item_id}.jpg")
        except InvalidImage as exc:
            logger.warning("skipping image of %s: %s", item_id, exc.message)
            return None

    _compute_into(
        cache,
        [f"{i}.jpg" for i in todo],
        _KeyedLoader(load),
        encoder_factory,
        chunk,
        f"image features ({images_dir.name})",
    )
    ids = [i for i in present if f"{i}.jpg" in cache]
    return ids, cache.get([f"{i}.jpg" for i in ids])


def cached_tar_image_inputs(
    item_ids: Iterable[str],
    tar_path: Path,
    encoder_factory: Callable[[], object],
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    chunk: int = 512,
    tag: str = "tar",
) -> tuple[list[str], np.ndarray]:
    """Image inputs of ``images/<id>.jpg`` members of a (gzipped) tar, e.g. the 60x80 photos.

    ``tag`` names the cache (include the encoder resolution when it is not 224).
    """
    wanted = set(item_ids)
    cache = FeatureCache(Path(cache_dir) / _source_name(tag, tar_path), IMAGE_INPUT_DIM)
    todo_set = {i for i in wanted if f"{i}.jpg" not in cache}
    if todo_set:
        blobs: dict[str, bytes] = {}
        with tarfile.open(tar_path, "r:*") as tar:
            for member in tar:
                name = Path(member.name).name
                if not member.isfile() or not name.endswith(".jpg") or name[:-4] not in todo_set:
                    continue
                fh = tar.extractfile(member)
                if fh is not None:
                    blobs[name[:-4]] = fh.read()
        todo = sorted(blobs, key=lambda s: (len(s), s))

        def load(item_id: str) -> Image.Image | None:
            try:
                return decode_image(blobs[item_id])
            except InvalidImage:
                return None

        _compute_into(
            cache,
            [f"{i}.jpg" for i in todo],
            _KeyedLoader(load),
            encoder_factory,
            chunk,
            "tar features",
        )
    ids = sorted((i for i in wanted if f"{i}.jpg" in cache), key=lambda s: (len(s), s))
    return ids, cache.get([f"{i}.jpg" for i in ids])


class _KeyedLoader:
    """Adapts an id loader to file-name keys (``<id>.jpg``)."""

    def __init__(self, load: Callable[[str], Image.Image | None]) -> None:
        self._load = load

    def __call__(self, key: str) -> Image.Image | None:
        return self._load(key[:-4])


def cached_text_features(
    texts: Sequence[str],
    encoder_factory: Callable[[], object],
    *,
    name: str = "text_minilm",
    cache_dir: Path = DEFAULT_CACHE_DIR,
    chunk: int = 2048,
) -> np.ndarray:
    """(N, 384) MiniLM features of ``texts`` cached by sha1 of each text."""
    from engine.models.encoders import TEXT_FEATURE_DIM

    cache = FeatureCache(Path(cache_dir) / f"{name}_{FEATURE_VERSION}.npz", TEXT_FEATURE_DIM)
    keys = [hashlib.sha1(t.encode("utf-8")).hexdigest() for t in texts]
    missing: dict[str, str] = {}
    for k, t in zip(keys, texts, strict=True):
        if k not in cache:
            missing[k] = t
    if missing:
        encoder = encoder_factory()
        mk = list(missing)
        for start in tqdm(range(0, len(mk), chunk), desc="text features", unit="chunk"):
            part = mk[start : start + chunk]
            cache.add(part, encoder.encode([missing[k] for k in part]))  # type: ignore[attr-defined]
            cache.save()
    return cache.get(keys)
