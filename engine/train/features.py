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
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.errors import InvalidImage
from engine.models.feature_cache import FEATURE_VERSION, FeatureCache, text_key
from engine.models.features import IMAGE_INPUT_DIM, image_inputs
from engine.models.images import decode_image, load_image_file
from engine.settings import PROJECT_ROOT

logger = logging.getLogger(__name__)

DEFAULT_CACHE_DIR = PROJECT_ROOT / ".cache" / "features"


def _source_name(prefix: str, source: Path) -> str:
    digest = hashlib.sha1(str(Path(source).resolve()).encode("utf-8")).hexdigest()[:10]
    return f"{prefix}_{FEATURE_VERSION}_{digest}.npz"


def image_cache_path(
    images_dir: Path, cache_dir: Path = DEFAULT_CACHE_DIR, tag: str = "img224"
) -> Path:
    """The feature cache of a photo folder (``tag`` names the encoder resolution)."""
    return Path(cache_dir) / _source_name(tag, images_dir)


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


def cached_image_files(
    files: Mapping[str, Path],
    images_dir: Path,
    encoder_factory: Callable[[], object],
    *,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    chunk: int = 256,
    tag: str = "img224",
) -> tuple[list[str], np.ndarray]:
    """Image inputs of any catalog's photos: ``files`` maps item id -> image file (usually
    under ``images_dir``, which names the cache with ``tag``: give the encoder resolution when
    it is not 224). Items whose file is missing or does not decode are left out (logged);
    returns (ids, (N, D) array) in ``files`` order."""
    images_dir = Path(images_dir)
    cache = FeatureCache(image_cache_path(images_dir, cache_dir, tag), IMAGE_INPUT_DIM)

    def key(path: Path) -> str:
        try:
            return str(Path(path).relative_to(images_dir))
        except ValueError:
            return str(Path(path).resolve())

    keys = {item_id: key(path) for item_id, path in files.items() if Path(path).is_file()}
    missing = len(files) - len(keys)
    if missing:
        logger.info("%d of %d items have no image file", missing, len(files))
    path_of = {k: Path(files[i]) for i, k in keys.items()}
    todo = sorted({k for k in keys.values() if k not in cache})

    def load(k: str) -> Image.Image | None:
        try:
            return load_image_file(path_of[k])
        except InvalidImage as exc:
            logger.warning("skipping image %s: %s", path_of[k], exc.message)
            return None

    _compute_into(cache, todo, load, encoder_factory, chunk, f"image features ({images_dir.name})")
    ids = [i for i, k in keys.items() if k in cache]
    return ids, cache.get([keys[i] for i in ids])


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
    keys = [text_key(t) for t in texts]
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
