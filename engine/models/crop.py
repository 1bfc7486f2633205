"""Main-object crop for studio product photos.

How it works: the border colour is the per-channel median of the outermost pixels (catalog
photos are shot on a uniform, usually white, background). A pixel is foreground when any channel
differs from that colour by more than ``threshold``. Rows and columns holding at least a small
fraction of foreground pixels define a bounding box, which is widened by ``margin`` (a fraction
of the box size) and clamped to the image. When the box is tiny (less than ``min_area`` of the
image: noise, a blank photo) or covers nearly everything (``max_area``: a photo without a uniform
background, a lifestyle shot), the full image is used instead. The result is padded to a square
with the border colour so the encoder sees the object undistorted.

On model-worn photos the crop does NOT isolate the garment: the person is the foreground, so the
box is the whole figure (a shirt photo that also shows trousers keeps the trousers). Cropping
then only removes empty background; telling the garment from the rest of the outfit is left to
the learned heads (and :mod:`engine.models.colour` weights the upper/centre regions separately).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class CropResult:
    """The box used (left, top, right, bottom), whether it is the full image, and the mask."""

    box: tuple[int, int, int, int]
    full_image: bool
    background: tuple[int, int, int]
    mask: np.ndarray  # bool (H, W) foreground mask of the ORIGINAL image


def border_colour(arr: np.ndarray, width: int = 2) -> tuple[int, int, int]:
    """Median colour of the ``width``-pixel frame of an (H, W, 3) uint8 array."""
    h, w = arr.shape[:2]
    width = max(1, min(width, h // 2, w // 2))
    frame = np.concatenate(
        [
            arr[:width].reshape(-1, 3),
            arr[-width:].reshape(-1, 3),
            arr[:, :width].reshape(-1, 3),
            arr[:, -width:].reshape(-1, 3),
        ]
    )
    med = np.median(frame, axis=0)
    return (int(med[0]), int(med[1]), int(med[2]))


def foreground_mask(
    arr: np.ndarray, background: tuple[int, int, int], threshold: int
) -> np.ndarray:
    """Pixels whose largest per-channel difference from ``background`` exceeds ``threshold``."""
    bg = np.asarray(background, dtype=np.uint8)
    diff = np.maximum(arr, bg) - np.minimum(arr, bg)  # exact |arr - bg| without widening
    return np.maximum(np.maximum(diff[..., 0], diff[..., 1]), diff[..., 2]) > threshold


def find_main_object(
    img: Image.Image,
    *,
    threshold: int = 24,
    margin: float = 0.04,
    line_fraction: float = 0.01,
    min_area: float = 0.02,
    max_area: float = 0.97,
) -> CropResult:
    """Locate the main object; see the module docstring for the rule and the fallbacks."""
    arr = np.asarray(img.convert("RGB"))
    h, w = arr.shape[:2]
    bg = border_colour(arr)
    mask = foreground_mask(arr, bg, threshold)
    full = CropResult((0, 0, w, h), True, bg, mask)
    rows = np.flatnonzero(np.count_nonzero(mask, axis=1) > max(1, line_fraction * w))
    cols = np.flatnonzero(np.count_nonzero(mask, axis=0) > max(1, line_fraction * h))
    if rows.size == 0 or cols.size == 0:
        return full
    top, bottom = int(rows[0]), int(rows[-1]) + 1
    left, right = int(cols[0]), int(cols[-1]) + 1
    bw, bh = right - left, bottom - top
    mx, my = int(round(margin * bw)) + 1, int(round(margin * bh)) + 1
    left, right = max(0, left - mx), min(w, right + mx)
    top, bottom = max(0, top - my), min(h, bottom + my)
    area = (right - left) * (bottom - top) / float(w * h)
    if area < min_area or area > max_area:
        return full
    return CropResult((left, top, right, bottom), False, bg, mask)


def pad_to_square(img: Image.Image, colour: tuple[int, int, int]) -> Image.Image:
    w, h = img.size
    if w == h:
        return img
    side = max(w, h)
    canvas = Image.new("RGB", (side, side), colour)
    canvas.paste(img, ((side - w) // 2, (side - h) // 2))
    return canvas


def crop_main_object(img: Image.Image, **kwargs: float) -> Image.Image:
    """The main-object crop padded to a square with the background colour (RGB)."""
    rgb = img.convert("RGB")
    res = find_main_object(rgb, **kwargs)  # type: ignore[arg-type]
    if res.full_image:
        return pad_to_square(rgb, res.background)
    return pad_to_square(rgb.crop(res.box), res.background)
