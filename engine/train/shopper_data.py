"""Backbone inputs of synthetic shopper photos (training and evaluation of photo search).

For each item: one synthetic photo (:mod:`engine.train.datagen.shopper`, seeded by ``seed``,
item id and ``copy``), then

* ``whole``: inputs of the whole photo padded to a square (spatial mean of the backbone map,
  colour descriptor of the whole frame), as the two-granularity query computes them;
* ``object``: inputs of the true object box, jittered by up to ``jitter`` of its size (what a
  good localiser returns), colour restricted to the true mask;
* ``targets``: the share of object pixels in each cell of the 7 x 7 map (the objectness head's
  training target), and ``maps`` themselves (float16) for the first ``keep_maps`` items;
* ``boxes``: the true object box in the padded square, as shares of its side (the box head's
  target).

Results are cached per (images folder, seed, copy, jitter) in ``.cache/features``.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image
from tqdm import tqdm

from engine.errors import InvalidImage
from engine.models.colour import colour_features
from engine.models.crop import CropResult, border_colour, pad_to_square
from engine.models.images import load_image_file
from engine.train.datagen.shopper import ShopperPhoto, item_rng, synthesise
from engine.train.features import DEFAULT_CACHE_DIR

logger = logging.getLogger(__name__)


@dataclass
class SynthSet:
    ids: list[str]
    whole: np.ndarray  # (N, IMAGE_INPUT_DIM)
    object: np.ndarray  # (N, IMAGE_INPUT_DIM)
    targets: np.ndarray  # (N, h, w) object share per map cell
    maps: np.ndarray  # (M, C, h, w) float16, M = min(keep_maps, N)
    # outputs of the backbone's first blocks for the object crops (float16), when asked for
    # (engine.train.shopper_backbone fine-tunes the rest); None otherwise
    object_maps: np.ndarray | None = None
    # (N, 4) true object box (left, top, right, bottom) in the padded square / its side
    boxes: np.ndarray | None = None
    from_cache: bool = False  # read from the npz cache (its generation cost was not paid now)


def synthetic_photos(
    ids: Sequence[str],
    images_dir: Path,
    seed: int,
    copy: int = 0,
    files: Mapping[str, Path] | None = None,
) -> list[tuple[str, Image.Image, ShopperPhoto]]:
    """(id, studio photo, synthetic photo) of the items whose photo loads; ``files``: item id
    -> photo for catalogs whose photos are not ``images_dir/<id>.jpg``."""
    out = []
    for item in ids:
        path = (files or {}).get(item) or Path(images_dir) / f"{item}.jpg"
        try:
            studio = load_image_file(path)
        except InvalidImage as exc:
            logger.warning("skipping %s: %s", item, exc.message)
            continue
        out.append((item, studio, synthesise(studio, item_rng(seed, item, copy))))
    return out


def _cell_share(mask: np.ndarray, cells: int) -> np.ndarray:
    img = Image.fromarray((mask * 255).astype(np.uint8)).resize((cells, cells), Image.BOX)
    return np.asarray(img, np.float32) / 255.0


def _jittered(box: tuple[int, int, int, int], size: tuple[int, int], rng, jitter: float):
    left, top, right, bottom = box
    bw, bh = right - left, bottom - top
    d = [rng.uniform(-jitter, jitter) for _ in range(4)]
    w, h = size
    return (
        int(max(0, left + d[0] * bw)),
        int(max(0, top + d[1] * bh)),
        int(min(w, right + d[2] * bw)),
        int(min(h, bottom + d[3] * bh)),
    )


def compute(
    ids: Sequence[str],
    images_dir: Path,
    encoder: Any,
    *,
    seed: int,
    copy: int = 0,
    jitter: float = 0.08,
    keep_maps: int = 0,
    chunk: int = 32,
    prefix: Callable[[list[Image.Image]], np.ndarray] | None = None,
    files: Mapping[str, Path] | None = None,
) -> SynthSet:
    """See the module docstring (not cached); ``prefix``: also the object crops' outputs of
    the backbone's first blocks (:func:`engine.train.shopper_backbone.prefix_function`);
    ``files``: item id -> studio photo (default ``images_dir/<id>.jpg``)."""
    kept, whole, obj, targets, maps, obj_maps, boxes = [], [], [], [], [], [], []
    bar = tqdm(total=len(ids), desc=f"synthetic shopper photos (seed {seed})", unit="img")
    for start in range(0, len(ids), chunk):
        batch = synthetic_photos(ids[start : start + chunk], images_dir, seed, copy, files)
        squares, crops, colours_w, colours_o = [], [], [], []
        for item, _, ph in batch:
            rgb = ph.image
            bg = border_colour(np.asarray(rgb))
            sq = pad_to_square(rgb, bg)
            dx, dy = (sq.width - rgb.width) // 2, (sq.height - rgb.height) // 2
            sq_mask = np.zeros((sq.height, sq.width), bool)
            sq_mask[dy : dy + rgb.height, dx : dx + rgb.width] = ph.mask
            targets.append(_cell_share(sq_mask, 7))
            boxes.append(np.add(ph.box, (dx, dy, dx, dy)) / float(sq.width))
            squares.append(sq)
            h, w = ph.mask.shape
            everything = CropResult((0, 0, w, h), True, bg, np.ones((h, w), bool))
            colours_w.append(colour_features(rgb, everything))
            rng = item_rng(seed + 1, item, copy)
            box = _jittered(ph.box, rgb.size, rng, jitter)
            patch = rgb.crop(box)
            crops.append(pad_to_square(patch, border_colour(np.asarray(patch))))
            colours_o.append(colour_features(rgb, CropResult(box, False, bg, ph.mask)))
            kept.append(item)
        if not batch:
            continue
        fmap = encoder.feature_maps(squares)
        if len(maps) * chunk < keep_maps:
            maps.append(fmap.astype(np.float16))
        whole.append(np.concatenate([fmap.mean(axis=(2, 3)), np.stack(colours_w)], axis=1))
        obj.append(np.concatenate([encoder.features(crops), np.stack(colours_o)], axis=1))
        if prefix is not None:
            obj_maps.append(prefix(crops))
        bar.update(len(batch))
    bar.close()
    all_maps = np.concatenate(maps)[:keep_maps] if maps else np.zeros((0, 1280, 7, 7), np.float16)
    return SynthSet(
        kept,
        np.concatenate(whole).astype(np.float32),
        np.concatenate(obj).astype(np.float32),
        np.stack(targets).astype(np.float32),
        all_maps,
        np.concatenate(obj_maps) if obj_maps else None,
        boxes=np.asarray(boxes, np.float32).reshape(-1, 4),
    )


def _files_tag(ids: Sequence[str], images_dir: Path, files: Mapping[str, Path] | None) -> str:
    """A cache-key part naming the photo files, empty when every one is ``<id>.jpg`` in
    ``images_dir`` (so such caches keep their key)."""
    if not files:
        return ""
    root = Path(images_dir)
    named = [(i, Path(files[i])) for i in ids if i in files]
    if all(path == root / f"{i}.jpg" for i, path in named):
        return ""
    text = "\n".join(f"{i}={path}" for i, path in named)
    return "|files=" + hashlib.sha1(text.encode()).hexdigest()[:12]


def cached(
    ids: Sequence[str],
    images_dir: Path,
    encoder_factory: Any,
    *,
    seed: int,
    copy: int = 0,
    keep_maps: int = 0,
    cache_dir: Path = DEFAULT_CACHE_DIR,
    prefix: tuple[str, Callable[[list[Image.Image]], np.ndarray]] | None = None,
    files: Mapping[str, Path] | None = None,
) -> SynthSet:
    """:func:`compute`, cached in one npz per (folder, ids, seed, copy, keep_maps, prefix
    tag, and the photo files where they are not ``<id>.jpg``); ``prefix``: (a tag naming the
    prefix, the function)."""
    tag = f"|prefix={prefix[0]}" if prefix is not None else ""
    tag += _files_tag(ids, images_dir, files)
    key = hashlib.sha1(
        f"{Path(images_dir).resolve()}|{','.join(ids)}|{seed}|{copy}|{keep_maps}|v2{tag}".encode()
    ).hexdigest()[:12]
    path = Path(cache_dir) / f"shopper_{key}.npz"
    if path.is_file():
        z = np.load(path)
        return SynthSet(
            [str(i) for i in z["ids"]],
            z["whole"],
            z["object"],
            z["targets"],
            z["maps"],
            z["object_maps"] if "object_maps" in z.files else None,
            boxes=z["boxes"] if "boxes" in z.files else None,
            from_cache=True,
        )
    data = compute(
        ids,
        images_dir,
        encoder_factory(),
        seed=seed,
        copy=copy,
        keep_maps=keep_maps,
        prefix=prefix[1] if prefix is not None else None,
        files=files,
    )
    extra = {} if data.object_maps is None else {"object_maps": data.object_maps}
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(
        path,
        ids=np.asarray(data.ids),
        whole=data.whole,
        object=data.object,
        targets=data.targets,
        maps=data.maps,
        boxes=data.boxes,
        **extra,
    )
    return data


def split_ids(
    photographed: Sequence[str], n_train: int, n_val: int | None, seed: int = 0
) -> tuple[list[str], list[str]]:
    """Training and validation items (never test items), a seeded sample of each (``n_val``
    None: every validation item)."""
    from engine.catalog import is_test_id
    from engine.train.joint_data import is_val_id

    ids = sorted(set(photographed))
    rng = np.random.default_rng(seed)
    train = [i for i in ids if not is_test_id(i) and not is_val_id(i)]
    val = [i for i in ids if is_val_id(i)]
    train = [train[j] for j in sorted(rng.permutation(len(train))[:n_train])]
    val = [val[j] for j in sorted(rng.permutation(len(val))[:n_val])]
    return train, val
