"""Safe image decoding: bytes or a file in, an RGB ``PIL.Image`` out, or :class:`InvalidImage`.

Every failure mode of untrusted uploads (empty body, not an image, truncated or corrupt data,
decompression bombs, oversized payloads) becomes an :class:`engine.errors.InvalidImage` (or its
subclass for size limits) with a message a client can act on; no bare PIL error escapes.
"""

from __future__ import annotations

import io
import warnings
from pathlib import Path

from PIL import Image, ImageOps, UnidentifiedImageError

from engine.errors import InvalidImage

DEFAULT_MAX_BYTES = 10 * 1024 * 1024
DEFAULT_MAX_PIXELS = 40_000_000
# Background used when flattening transparent images (catalog photos are shot on white).
_FLATTEN_BACKGROUND = (255, 255, 255)


def _to_rgb(img: Image.Image) -> Image.Image:
    if img.mode == "RGB":
        return img
    if img.mode in ("RGBA", "LA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")
        background = Image.new("RGB", rgba.size, _FLATTEN_BACKGROUND)
        background.paste(rgba, mask=rgba.getchannel("A"))
        return background
    return img.convert("RGB")


def decode_image(
    data: bytes,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: int | None = None,
) -> Image.Image:
    """Decode ``data`` into a fully loaded RGB image (EXIF orientation applied).

    ``draft_size``: a JPEG whose shorter side is at least twice this is decoded downscaled by
    the decoder itself (DCT scaling, 1/2 to 1/8) to the smallest size still at least
    ``draft_size`` on each side: a phone photo costs a fraction of a full decode, and the
    encoders only need a few hundred pixels.

    Raises :class:`InvalidImage` when the input is empty, larger than ``max_bytes``, not a
    recognised image format, truncated or corrupt, or has more than ``max_pixels`` pixels
    (checked from the header before any pixel data is decoded).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise InvalidImage("image data must be bytes", got=type(data).__name__)
    size = len(data)
    if size == 0:
        raise InvalidImage("image is empty (0 bytes)")
    if size > max_bytes:
        raise InvalidImage(
            f"image is too large: {size} bytes > limit of {max_bytes} bytes",
            size=size,
            max_bytes=max_bytes,
        )
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(bytes(data)))
            width, height = img.size
            if width <= 0 or height <= 0:
                raise InvalidImage("image has no pixels", width=width, height=height)
            if width * height > max_pixels:
                raise InvalidImage(
                    f"image has too many pixels: {width}x{height} > limit of {max_pixels} "
                    "(possible decompression bomb)",
                    width=width,
                    height=height,
                    max_pixels=max_pixels,
                )
            if getattr(img, "is_animated", False):
                img.seek(0)
            if draft_size and img.format == "JPEG" and min(width, height) >= 2 * draft_size:
                img.draft("RGB", (draft_size, draft_size))
            img.load()
            upright: Image.Image = ImageOps.exif_transpose(img) or img
            return _to_rgb(upright)
    except InvalidImage:
        raise
    except UnidentifiedImageError as exc:
        raise InvalidImage("data is not a recognised image format") from exc
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise InvalidImage(f"image rejected as a decompression bomb: {exc}") from exc
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise InvalidImage(f"image is truncated or corrupt: {exc}") from exc
    except Exception as exc:  # noqa: BLE001 - any decoder failure is the client's bad image
        raise InvalidImage(f"image could not be decoded: {type(exc).__name__}: {exc}") from exc


def load_image_file(
    path: Path | str,
    *,
    max_bytes: int = DEFAULT_MAX_BYTES,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> Image.Image:
    """Read and decode an image file with the same checks as :func:`decode_image`."""
    p = Path(path)
    try:
        file_size = p.stat().st_size
    except OSError as exc:
        raise InvalidImage(
            f"cannot read image file {p}: {exc.strerror or exc}", path=str(p)
        ) from exc
    if file_size > max_bytes:
        raise InvalidImage(
            f"image file {p} is too large: {file_size} bytes > limit of {max_bytes} bytes",
            path=str(p),
            size=file_size,
            max_bytes=max_bytes,
        )
    try:
        data = p.read_bytes()
    except OSError as exc:
        raise InvalidImage(
            f"cannot read image file {p}: {exc.strerror or exc}", path=str(p)
        ) from exc
    return decode_image(data, max_bytes=max_bytes, max_pixels=max_pixels)
