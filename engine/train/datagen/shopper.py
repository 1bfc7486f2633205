"""Synthetic shopper photos from catalog packshots (deterministic by seed and item id).

A studio photo's object is cut out of its near-uniform background (the background-difference
mask of :mod:`engine.models.crop`, closed and feathered), then placed on a procedural
background (flat colour with noise, a two-colour gradient, wood grain, carpet, woven fabric or
plaid, each optionally with clutter blobs) with scale, rotation, a perspective warp, partial
crops at the frame edge and a soft drop shadow; the whole photo then gets uneven lighting, a
white-balance and gamma shift, sensor noise, optional blur and JPEG compression.

:func:`synthesise` returns the photo and the object's true box (left, top, right, bottom) and
mask in the photo's pixels, which train the localiser and score its boxes.

What it cannot imitate: garments worn by a person who is not in the packshot, folds and
drape of a garment lying flat or on a hanger, real clutter (other garments, furniture), phone
optics. Model-worn packshots are pasted as the whole figure.
"""

from __future__ import annotations

import io
import zlib
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageFilter

from engine.models.crop import border_colour, find_main_object, foreground_mask

BACKGROUNDS = ("flat", "gradient", "wood", "carpet", "fabric", "plaid")


@dataclass(frozen=True)
class ShopperPhoto:
    image: Image.Image
    box: tuple[int, int, int, int]  # the object's true box in ``image``
    mask: np.ndarray  # bool (H, W): the object's pixels
    background: str


def item_rng(seed: int, item_id: str, copy: int = 0) -> np.random.Generator:
    """The generator of one item's ``copy``-th synthetic photo (stable across runs)."""
    return np.random.default_rng([seed, zlib.crc32(str(item_id).encode("utf-8")), copy])


def cutout(img: Image.Image, threshold: int = 18) -> tuple[Image.Image, Image.Image]:
    """The object's box crop (RGB) and its feathered alpha (L), from a studio photo."""
    rgb = img.convert("RGB")
    arr = np.asarray(rgb)
    mask = foreground_mask(arr, border_colour(arr), threshold)
    try:  # a white print inside a white shirt is still the shirt
        from scipy.ndimage import binary_fill_holes

        mask = binary_fill_holes(mask)
    except ImportError:  # pragma: no cover - scipy comes with scikit-learn
        pass
    alpha = Image.fromarray((mask * 255).astype(np.uint8))
    # close small holes (a white print on a white shirt) and feather the edge
    alpha = alpha.filter(ImageFilter.MaxFilter(5)).filter(ImageFilter.MinFilter(3))
    alpha = alpha.filter(ImageFilter.GaussianBlur(0.8))
    res = find_main_object(rgb)
    box = res.box if not res.full_image else (0, 0, rgb.width, rgb.height)
    return rgb.crop(box), alpha.crop(box)


def _lowfreq(rng: np.random.Generator, h: int, w: int, cells: int) -> np.ndarray:
    """Smooth noise in [0, 1] (random grid upsampled bicubically)."""
    small = (rng.random((cells, cells)) * 255).astype(np.uint8)
    up = Image.fromarray(small).resize((w, h), Image.Resampling.BICUBIC)
    return np.asarray(up, dtype=np.float32) / 255.0


def _colour(rng: np.random.Generator, muted: bool = True) -> np.ndarray:
    c = rng.random(3) * 255
    if muted:  # floors, carpets and tables are rarely saturated
        grey = c.mean()
        c = grey + (c - grey) * rng.uniform(0.2, 0.7)
    return c.astype(np.float32)


def background(rng: np.random.Generator, h: int, w: int, kind: str) -> np.ndarray:
    """(H, W, 3) float32 procedural background of ``kind`` (one of :data:`BACKGROUNDS`)."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    base = _colour(rng)
    if kind == "flat":
        out = np.broadcast_to(base, (h, w, 3)).copy()
        out += (_lowfreq(rng, h, w, 4)[..., None] - 0.5) * rng.uniform(5, 30)
    elif kind == "gradient":
        other = _colour(rng)
        angle = rng.uniform(0, np.pi)
        t = xx * np.cos(angle) + yy * np.sin(angle)
        t = (t - t.min()) / max(1e-6, float(t.max() - t.min()))
        out = base * (1 - t[..., None]) + other * t[..., None]
    elif kind == "wood":
        base = np.array([rng.uniform(90, 200), rng.uniform(60, 140), rng.uniform(30, 90)])
        plank = rng.uniform(35, 90)
        warp = _lowfreq(rng, h, w, 6) * rng.uniform(8, 25)
        grain = np.sin((yy + warp) * rng.uniform(0.3, 0.9)) * 0.5 + 0.5
        planks = (np.floor(xx / plank) % 2)[..., None] * rng.uniform(-25, 25)
        out = base * (0.8 + 0.25 * grain[..., None]) + planks
        out[(xx % plank) < 1.5] *= 0.6  # the gaps between planks
    elif kind == "carpet":
        out = base + (_lowfreq(rng, h, w, 12)[..., None] - 0.5) * 40
        out = out + rng.normal(0, rng.uniform(10, 28), (h, w, 1))
    elif kind == "fabric":
        period = rng.uniform(2.5, 6)
        weave = np.sin(xx * 2 * np.pi / period) * np.sin(yy * 2 * np.pi / period)
        out = base + weave[..., None] * rng.uniform(8, 25)
        out = out + (_lowfreq(rng, h, w, 5)[..., None] - 0.5) * 30
    else:  # plaid
        other = _colour(rng, muted=False)
        period = rng.uniform(18, 48)
        stripes = ((xx % period) < period / 3) | ((yy % period) < period / 3)
        out = np.where(stripes[..., None], other * 0.6 + base * 0.4, base)
    out = out + rng.normal(0, rng.uniform(1, 6), (h, w, 3))
    return np.clip(out, 0, 255).astype(np.float32)


def _clutter(rng: np.random.Generator, bg: np.ndarray) -> np.ndarray:
    """A few blurred ellipses and bars (objects lying around), mostly near the edges."""
    h, w = bg.shape[:2]
    layer = Image.fromarray(bg.astype(np.uint8))
    for _ in range(int(rng.integers(1, 4))):
        blob = Image.new("L", (w, h), 0)
        cx = rng.choice([rng.uniform(0, 0.25), rng.uniform(0.75, 1.0)]) * w
        cy = rng.uniform(0, 1) * h
        rx, ry = rng.uniform(0.05, 0.18) * w, rng.uniform(0.05, 0.18) * h
        from PIL import ImageDraw

        ImageDraw.Draw(blob).ellipse((cx - rx, cy - ry, cx + rx, cy + ry), fill=255)
        blob = blob.filter(ImageFilter.GaussianBlur(rng.uniform(0.5, 3)))
        colour = tuple(int(c) for c in _colour(rng, muted=False))
        layer.paste(Image.new("RGB", (w, h), colour), mask=blob)
    return np.asarray(layer, dtype=np.float32)


def _perspective_coeffs(src: list[tuple[float, float]], dst: list[tuple[float, float]]):
    """Coefficients for ``Image.transform(..., PERSPECTIVE)`` mapping ``dst`` -> ``src``."""
    a, b = [], []
    for (x, y), (u, v) in zip(dst, src, strict=True):
        a.append([x, y, 1, 0, 0, 0, -u * x, -u * y])
        a.append([0, 0, 0, x, y, 1, -v * x, -v * y])
        b.extend([u, v])
    return np.linalg.solve(np.asarray(a, float), np.asarray(b, float)).tolist()


def _warp(
    rng: np.random.Generator, obj: Image.Image, alpha: Image.Image, strength: float
) -> tuple[Image.Image, Image.Image]:
    w, h = obj.size
    d = strength * min(w, h)
    corners = [(0, 0), (w, 0), (w, h), (0, h)]
    moved = [(x + rng.uniform(-d, d), y + rng.uniform(-d, d)) for x, y in corners]
    coeffs = _perspective_coeffs(corners, moved)
    warp = Image.Transform.PERSPECTIVE
    return (
        obj.transform((w, h), warp, coeffs, Image.Resampling.BILINEAR),
        alpha.transform((w, h), warp, coeffs, Image.Resampling.BILINEAR),
    )


def synthesise(
    img: Image.Image, rng: np.random.Generator, *, size: tuple[int, int] | None = None
) -> ShopperPhoto:
    """One synthetic shopper photo of the studio photo ``img`` (see the module docstring)."""
    obj, alpha = cutout(img)
    w = int(size[0]) if size else int(rng.integers(224, 320))
    h = int(size[1]) if size else int(rng.integers(224, 320))
    kind = str(rng.choice(BACKGROUNDS))
    bg = background(rng, h, w, kind)
    if rng.random() < 0.5:
        bg = _clutter(rng, bg)
    # scale: the object's long side 40-95% of the frame's short side
    scale = rng.uniform(0.4, 0.95) * min(w, h) / max(obj.size)
    new = (max(8, int(obj.width * scale)), max(8, int(obj.height * scale)))
    obj = obj.resize(new, Image.Resampling.BILINEAR)
    alpha = alpha.resize(new, Image.Resampling.BILINEAR)
    obj, alpha = _warp(rng, obj, alpha, rng.uniform(0.0, 0.12))
    angle = rng.uniform(-25, 25)
    obj = obj.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    alpha = alpha.rotate(angle, Image.Resampling.BILINEAR, expand=True)
    # position: mostly inside, sometimes cut by the frame (up to 15% of the object)
    ox = int(rng.uniform(-0.15 * obj.width, w - 0.85 * obj.width))
    oy = int(rng.uniform(-0.15 * obj.height, h - 0.85 * obj.height))
    canvas = Image.fromarray(bg.astype(np.uint8))
    a_full = Image.new("L", (w, h), 0)
    a_full.paste(alpha, (ox, oy))
    # drop shadow: the blurred silhouette, offset, darkening the background
    shadow = Image.new("L", (w, h), 0)
    sx, sy = int(rng.uniform(-12, 12)), int(rng.uniform(2, 16))
    shadow.paste(alpha, (ox + sx, oy + sy))
    shadow = shadow.filter(ImageFilter.GaussianBlur(rng.uniform(3, 12)))
    dark = 1.0 - rng.uniform(0.15, 0.5) * np.asarray(shadow, np.float32)[..., None] / 255.0
    canvas = Image.fromarray(np.clip(np.asarray(canvas, np.float32) * dark, 0, 255).astype("uint8"))
    obj_full = Image.new("RGB", (w, h))
    obj_full.paste(obj, (ox, oy))
    canvas.paste(obj_full, mask=a_full)
    arr = np.asarray(canvas, dtype=np.float32)
    # lighting: a smooth illumination field, white balance, gamma, sensor noise
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    angle = rng.uniform(0, 2 * np.pi)
    t = (xx / w - 0.5) * np.cos(angle) + (yy / h - 0.5) * np.sin(angle)
    light = 1.0 + rng.uniform(0.0, 0.5) * t
    arr = arr * light[..., None] * rng.uniform(0.8, 1.15)
    arr = arr * rng.uniform(0.85, 1.15, 3)
    arr = 255.0 * (np.clip(arr, 0, 255) / 255.0) ** rng.uniform(0.8, 1.25)
    arr = arr + rng.normal(0, rng.uniform(1, 6), arr.shape)
    photo = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8))
    if rng.random() < 0.5:
        photo = photo.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.3)))
    buf = io.BytesIO()
    photo.save(buf, format="JPEG", quality=int(rng.integers(35, 90)))
    photo = Image.open(io.BytesIO(buf.getvalue())).convert("RGB")
    mask = np.asarray(a_full) > 127
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        box = (0, 0, w, h)
    else:
        box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
    return ShopperPhoto(photo, box, mask, kind)
