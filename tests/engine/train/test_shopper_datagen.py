"""Synthetic shopper photos: deterministic by seed, the true box holds the pasted object."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image

from engine.train.datagen.shopper import BACKGROUNDS, background, cutout, item_rng, synthesise

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "images"


def _studio() -> Image.Image:
    return Image.open(SAMPLE / "10018.jpg").convert("RGB")


def test_same_seed_same_photo_and_other_copies_differ() -> None:
    a = synthesise(_studio(), item_rng(0, "10018"))
    b = synthesise(_studio(), item_rng(0, "10018"))
    c = synthesise(_studio(), item_rng(0, "10018", copy=1))
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.box == b.box
    assert a.image.size != c.image.size or not np.array_equal(
        np.asarray(a.image), np.asarray(c.image)
    )


def test_box_bounds_the_object_mask_and_is_not_the_whole_frame() -> None:
    for copy in range(4):
        ph = synthesise(_studio(), item_rng(3, "10018", copy))
        w, h = ph.image.size
        assert ph.mask.shape == (h, w) and ph.mask.any()
        left, top, right, bottom = ph.box
        rows, cols = np.flatnonzero(ph.mask.any(axis=1)), np.flatnonzero(ph.mask.any(axis=0))
        assert (left, top, right, bottom) == (cols[0], rows[0], cols[-1] + 1, rows[-1] + 1)
        assert ph.mask.mean() < 0.9  # a shopper photo shows background too
        assert ph.background in BACKGROUNDS


def test_backgrounds_are_not_uniform_white_and_cutout_drops_the_studio_white() -> None:
    for kind in BACKGROUNDS:
        bg = background(np.random.default_rng(1), 64, 80, kind)
        assert bg.shape == (64, 80, 3)
        assert bg.std() > 1.0 and bg.mean() < 250
    obj, alpha = cutout(_studio())
    a = np.asarray(alpha)
    assert obj.size == alpha.size
    assert 0.05 < (a > 127).mean() < 1.0


def test_synthetic_photos_of_a_catalog_whose_files_are_not_named_by_id(tmp_path: Path) -> None:
    from engine.train.shopper_data import synthetic_photos

    src = sorted(SAMPLE.glob("*.jpg"))[:2]
    renamed = tmp_path / "2019_a_01.jpg"
    renamed.write_bytes(src[0].read_bytes())
    files = {"a-01": renamed}
    by_file = synthetic_photos(["a-01", src[1].stem], tmp_path, 3, files=files)
    assert [i for i, _, _ in by_file] == ["a-01"]  # the second has no file under tmp_path
    same = synthetic_photos([src[0].stem], SAMPLE, 3)
    assert by_file[0][1].size == same[0][1].size  # the same studio photo, found by mapping
