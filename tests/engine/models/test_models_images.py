"""Safe decoding and main-object crop."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from engine.errors import InvalidImage
from engine.models.colour import COLOUR_DIM, colour_features
from engine.models.crop import crop_main_object, find_main_object
from engine.models.images import decode_image, load_image_file


def _jpeg(img: Image.Image, fmt: str = "JPEG") -> bytes:
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def _product_photo(
    size: int = 120, box: tuple[int, int, int, int] = (30, 40, 80, 100)
) -> Image.Image:
    img = Image.new("RGB", (size, size), (255, 255, 255))
    arr = np.asarray(img).copy()
    left, top, right, bottom = box
    arr[top:bottom, left:right] = (200, 30, 30)
    return Image.fromarray(arr)


def test_decode_valid_jpeg_and_png_to_rgb() -> None:
    img = decode_image(_jpeg(_product_photo()))
    assert img.mode == "RGB" and img.size == (120, 120)
    rgba = Image.new("RGBA", (10, 12), (0, 0, 255, 0))
    out = decode_image(_jpeg(rgba, "PNG"))
    assert out.mode == "RGB" and out.size == (10, 12)
    assert out.getpixel((0, 0)) == (255, 255, 255)  # transparent flattened on white


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        (b"", "empty"),
        (b"this is not an image at all", "not a recognised image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 40, ""),
    ],
)
def test_decode_rejects_bad_data(data: bytes, needle: str) -> None:
    with pytest.raises(InvalidImage) as err:
        decode_image(data)
    assert needle in err.value.message


def test_decode_rejects_truncated() -> None:
    data = _jpeg(_product_photo(200))
    with pytest.raises(InvalidImage, match="truncated or corrupt"):
        decode_image(data[: len(data) // 2])


def test_decode_rejects_too_many_bytes_and_pixels() -> None:
    data = _jpeg(_product_photo(200))
    with pytest.raises(InvalidImage, match="too large"):
        decode_image(data, max_bytes=100)
    with pytest.raises(InvalidImage, match="too many pixels") as err:
        decode_image(data, max_pixels=199 * 199)
    assert err.value.details["width"] == 200


def test_decode_rejects_decompression_bomb_header() -> None:
    # A tiny PNG whose header claims 20000x20000 pixels: rejected before decoding.
    big = Image.new("1", (20000, 20000))
    data = _jpeg(big, "PNG")
    assert len(data) < 200_000
    with pytest.raises(InvalidImage, match="decompression bomb"):
        decode_image(data)


def test_load_image_file(tmp_path: Path) -> None:
    p = tmp_path / "a.jpg"
    p.write_bytes(_jpeg(_product_photo()))
    assert load_image_file(p).size == (120, 120)
    with pytest.raises(InvalidImage, match="cannot read"):
        load_image_file(tmp_path / "missing.jpg")
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    with pytest.raises(InvalidImage, match="empty"):
        load_image_file(empty)


def test_crop_finds_object_with_margin() -> None:
    res = find_main_object(_product_photo())
    assert not res.full_image
    left, top, right, bottom = res.box
    assert 25 <= left <= 30 and 34 <= top <= 40 and 80 <= right <= 85 and 100 <= bottom <= 106
    out = crop_main_object(_product_photo())
    assert out.size[0] == out.size[1] == max(right - left, bottom - top)
    # The object fills the crop: far more red than in the original photo.
    red = (np.asarray(out)[..., 1] < 100).mean()
    assert red > 0.5


def test_crop_falls_back_to_full_image() -> None:
    blank = Image.new("RGB", (64, 48), (255, 255, 255))
    assert find_main_object(blank).full_image
    assert crop_main_object(blank).size == (64, 64)  # padded to a square
    speck = _product_photo(200, (100, 100, 103, 103))
    assert find_main_object(speck).full_image
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 50, 3), dtype=np.uint8))
    assert find_main_object(noise).full_image


def test_colour_features_distinguish_colours() -> None:
    red = colour_features(_product_photo())
    arr = np.asarray(_product_photo()).copy()
    arr[40:100, 30:80] = (30, 30, 200)
    blue = colour_features(Image.fromarray(arr))
    assert red.shape == blue.shape == (COLOUR_DIM,)
    assert red.dtype == np.float32
    assert np.abs(red - blue).sum() > 1.0
    assert np.allclose(red, colour_features(_product_photo()))


def _plain_jpeg(w: int, h: int) -> bytes:
    import io as _io

    from PIL import Image as _Image

    buf = _io.BytesIO()
    _Image.new("RGB", (w, h), (200, 30, 40)).save(buf, "JPEG", quality=90)
    return buf.getvalue()


def test_large_jpeg_is_decoded_downscaled_to_at_least_the_draft_size() -> None:
    from engine.models.images import decode_image

    img = decode_image(_plain_jpeg(2400, 1800), draft_size=448)
    assert img.mode == "RGB"
    # DCT scaling by 1/2 .. 1/8: the smallest result still >= 448 on each side (1/2 here)
    assert min(img.size) >= 448 and img.size[0] < 2400
    assert img.getpixel((10, 10))[0] > 150  # the pixels are real, not a blank placeholder


def test_small_jpeg_and_no_draft_size_decode_at_full_size() -> None:
    from engine.models.images import decode_image

    assert decode_image(_plain_jpeg(600, 500), draft_size=448).size == (600, 500)
    assert decode_image(_plain_jpeg(2400, 1800)).size == (2400, 1800)
