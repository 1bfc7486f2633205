"""Colour descriptor of the cropped foreground (ImageNet features are weak at colour).

HSV histograms of the foreground pixels (those differing from the background colour) inside the
main-object box, for three regions: the whole box, its centre (middle half in both directions)
and its upper half (on model-worn photos a top sits there while trousers sit below). Each region
contributes 12 hue x 2 saturation x 2 value chromatic bins plus 4 grey-level bins, Hellinger
(square-root) normalised, plus the mean RGB of its foreground: ``COLOUR_DIM`` values in all.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from engine.models.crop import CropResult, find_main_object

HUE_BINS = 12
_CHROMA_BINS = HUE_BINS * 2 * 2
_GREY_BINS = 4
_REGION_DIM = _CHROMA_BINS + _GREY_BINS + 3
N_REGIONS = 3
COLOUR_DIM = _REGION_DIM * N_REGIONS


def _bin_map(hsv: np.ndarray) -> np.ndarray:
    """(H, W) histogram bin of every pixel: chromatic hue x saturation x value, else grey."""
    h = hsv[..., 0].astype(np.int32)
    s = hsv[..., 1]
    v = hsv[..., 2].astype(np.int32)
    chroma = (s >= 51) & (v >= 51)
    chroma_idx = ((h * HUE_BINS) >> 8) * 4 + (s >= 140) * 2 + (v >= 150)
    grey_idx = _CHROMA_BINS + np.minimum(v * _GREY_BINS >> 8, _GREY_BINS - 1)
    return np.where(chroma, chroma_idx, grey_idx)


def _region_histogram(bins: np.ndarray, rgb: np.ndarray, mask: np.ndarray) -> np.ndarray:
    if np.count_nonzero(mask) < 8:  # no usable foreground: describe all pixels of the region
        idx = bins.reshape(-1)
        pixels = rgb.reshape(-1, 3)
    else:
        idx = bins[mask]
        pixels = rgb[mask]
    hist = np.bincount(idx, minlength=_CHROMA_BINS + _GREY_BINS).astype(np.float32)
    hist = np.sqrt(hist / max(1.0, float(hist.sum())))
    mean_rgb = pixels.mean(axis=0).astype(np.float32) / 255.0
    return np.concatenate([hist, mean_rgb])


def colour_features(img: Image.Image, crop: CropResult | None = None) -> np.ndarray:
    """The ``COLOUR_DIM``-d float32 colour descriptor of ``img`` (RGB) and its main object."""
    rgb_img = img.convert("RGB")
    if crop is None:
        crop = find_main_object(rgb_img)
    left, top, right, bottom = crop.box
    box_img = rgb_img.crop(crop.box) if not crop.full_image else rgb_img
    rgb = np.asarray(box_img)
    bins = _bin_map(np.asarray(box_img.convert("HSV")))
    mask = crop.mask[top:bottom, left:right]
    bh, bw = mask.shape
    regions = [
        (slice(0, bh), slice(0, bw)),
        (slice(bh // 4, bh - bh // 4), slice(bw // 4, bw - bw // 4)),
        (slice(0, max(1, bh // 2)), slice(0, bw)),
    ]
    parts = [_region_histogram(bins[r, c], rgb[r, c], mask[r, c]) for r, c in regions]
    return np.concatenate(parts).astype(np.float32)
