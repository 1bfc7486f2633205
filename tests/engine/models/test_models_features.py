"""Feature caches (image folder, tar of photos, texts) with a stub encoder: fast, no weights."""

from __future__ import annotations

import io
import tarfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from engine.models.colour import COLOUR_DIM
from engine.models.features import IMAGE_INPUT_DIM
from engine.train.features import (
    FeatureCache,
    cached_image_inputs,
    cached_tar_image_inputs,
    cached_text_features,
)


class StubImageEncoder:
    calls = 0

    def features(self, images: Sequence[Image.Image]) -> np.ndarray:
        StubImageEncoder.calls += len(images)
        return np.stack([np.full(1280, img.size[0], np.float32) for img in images])


class StubTextEncoder:
    calls = 0

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        StubTextEncoder.calls += len(texts)
        return np.stack([np.full(384, len(t), np.float32) for t in texts])


def _jpeg(colour: tuple[int, int, int], size: tuple[int, int] = (40, 50)) -> bytes:
    arr = np.full((size[1], size[0], 3), 255, np.uint8)
    arr[10:40, 10:30] = colour
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG")
    return buf.getvalue()


def test_image_folder_cache_computes_once_and_skips_bad(tmp_path: Path) -> None:
    images = tmp_path / "images"
    images.mkdir()
    (images / "1.jpg").write_bytes(_jpeg((200, 0, 0)))
    (images / "2.jpg").write_bytes(_jpeg((0, 0, 200)))
    (images / "3.jpg").write_bytes(b"broken")
    cache = tmp_path / "cache"
    StubImageEncoder.calls = 0
    ids, feats = cached_image_inputs(
        ["1", "2", "3", "4"], images, StubImageEncoder, cache_dir=cache
    )
    assert ids == ["1", "2"] and feats.shape == (2, IMAGE_INPUT_DIM)
    assert StubImageEncoder.calls == 2
    # Colour part differs between the red and the blue item.
    assert np.abs(feats[0, -COLOUR_DIM:] - feats[1, -COLOUR_DIM:]).sum() > 0.5
    ids2, feats2 = cached_image_inputs(["2", "1"], images, StubImageEncoder, cache_dir=cache)
    assert ids2 == ["2", "1"] and StubImageEncoder.calls == 2  # served from the npz
    assert np.array_equal(feats2[1], feats[0])


def test_tar_cache(tmp_path: Path) -> None:
    tar_path = tmp_path / "small.tar.gz"
    with tarfile.open(tar_path, "w:gz") as tar:
        for name, data in (("images/7.jpg", _jpeg((0, 200, 0))), ("images/8.jpg", b"bad")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    StubImageEncoder.calls = 0
    ids, feats = cached_tar_image_inputs(
        ["7", "8", "9"], tar_path, StubImageEncoder, cache_dir=tmp_path / "c"
    )
    assert ids == ["7"] and feats.shape == (1, IMAGE_INPUT_DIM)


def test_text_cache_and_feature_cache_roundtrip(tmp_path: Path) -> None:
    StubTextEncoder.calls = 0
    f = cached_text_features(["a", "bbb", "a"], StubTextEncoder, cache_dir=tmp_path)
    assert f.shape == (3, 384) and f[1, 0] == 3 and np.array_equal(f[0], f[2])
    assert StubTextEncoder.calls == 2  # duplicates encoded once
    cached_text_features(["bbb"], StubTextEncoder, cache_dir=tmp_path)
    assert StubTextEncoder.calls == 2
    store = FeatureCache(tmp_path / "x.npz", 3)
    store.add(["k"], np.ones((1, 3), np.float32))
    store.save()
    again = FeatureCache(tmp_path / "x.npz", 3)
    assert "k" in again and len(again) == 1
    assert FeatureCache(tmp_path / "x.npz", 4).get([]).shape == (0, 4)  # wrong dim: ignored
