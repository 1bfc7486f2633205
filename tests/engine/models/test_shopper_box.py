"""The box head's box in the served path: pixels of the square, the photo's box, persistence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from engine.models.shopper import ShopperModel
from engine.models.shopper_box import BoxHead, square_box
from tests.engine.models.test_shopper_model import FakeBackbone, _darkness_head


def _fixed_head(box: tuple[float, float, float, float]) -> BoxHead:
    """A box head that answers ``box`` (shares of the side) whatever the map."""
    head = BoxHead(mid=4, hidden=8)
    last = head.box[-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.logit(torch.tensor(box)))
    return head.eval()


def _cluttered(size: tuple[int, int] = (300, 200)) -> Image.Image:
    """A noisy, non-uniform background (never a studio shot) with a dark patch."""
    rng = np.random.default_rng(0)
    arr = rng.integers(90, 200, (size[1], size[0], 3), dtype=np.uint8)
    arr[40:120, 60:160] = 10
    return Image.fromarray(arr)


def test_square_box_widens_clips_and_refuses_degenerate_boxes() -> None:
    box, mask = square_box(np.array([0.25, 0.5, 0.75, 1.0]), 200, 0.1)  # type: ignore[misc]
    assert box == (40, 90, 160, 200)  # 10% of 100 px each side; clipped at the bottom
    assert mask.shape == (200, 200) and mask[100, 100] and not mask[10, 10]
    assert mask.sum() == 120 * 110
    assert square_box(np.array([0.5, 0.5, 0.501, 0.9]), 200, 0.0) is None


def test_box_head_boxes_are_sorted_and_inside_the_square() -> None:
    head = BoxHead(mid=8, hidden=16).eval()
    boxes = head.boxes(np.random.default_rng(1).normal(size=(5, 1280, 7, 7)) * 3)
    assert boxes.shape == (5, 4)
    assert (boxes >= 0).all() and (boxes <= 1).all()
    assert (boxes[:, 2] >= boxes[:, 0]).all() and (boxes[:, 3] >= boxes[:, 1]).all()


def test_locate_serves_the_regressed_box_in_the_photos_pixels() -> None:
    photo = _cluttered()  # 300 x 200: padded to a 300 square, 50 px above and below
    model = ShopperModel(_darkness_head(), None, box_head=_fixed_head((0.2, 0.3, 0.6, 0.7)))
    loc = model.locate([photo], FakeBackbone())[0]
    assert loc.source == "objectness"
    assert loc.box == (60, 40, 180, 160)  # (0.2 * 300, 0.3 * 300 - 50, ...)
    plain = ShopperModel(_darkness_head(), None).locate([photo], FakeBackbone())[0]
    assert plain.box != loc.box  # without the box head: the objectness cells' box
    whole = model.locate([photo], FakeBackbone(), localise=False)[0]
    assert whole.source == "full" and whole.box == (0, 0, 300, 200)


def test_the_box_margin_of_the_config_widens_the_served_box() -> None:
    head = _fixed_head((0.2, 0.3, 0.6, 0.7))
    model = ShopperModel(_darkness_head(), None, {"box_margin": 0.1}, box_head=head)
    assert model.locate([_cluttered()], FakeBackbone())[0].box == (48, 28, 192, 172)


def test_box_head_survives_a_save_and_old_checkpoints_load_without_one(tmp_path: Path) -> None:
    head = _fixed_head((0.1, 0.2, 0.8, 0.9))
    path = ShopperModel(_darkness_head(), None, {"box_margin": 0.03}, box_head=head).save(
        tmp_path / "shopper.pt"
    )
    back = ShopperModel.load(path)
    assert back.box_head is not None and back.box_head.shape == {
        "channels": 1280,
        "mid": 4,
        "hidden": 8,
    }
    maps = np.random.default_rng(2).normal(size=(2, 1280, 7, 7))
    np.testing.assert_allclose(back.box_head.boxes(maps), head.boxes(maps), atol=2e-3)
    assert back.config["box_margin"] == 0.03
    old = ShopperModel(_darkness_head(), None).state()
    del old["box_head"], old["box_config"]
    torch.save(old, tmp_path / "old.pt")
    assert ShopperModel.load(tmp_path / "old.pt").box_head is None


def test_a_box_head_of_another_shape_is_a_clear_error(tmp_path: Path) -> None:
    from engine.errors import ModelUnavailable

    state = ShopperModel(_darkness_head(), None, box_head=_fixed_head((0.1, 0.1, 0.9, 0.9))).state()
    state["box_config"] = {"channels": 1280, "mid": 16, "hidden": 8}
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ModelUnavailable, match="does not fit"):
        ShopperModel.load(tmp_path / "bad.pt")


@pytest.mark.parametrize("box_config", ["x", {"mid": None}])
def test_a_malformed_box_config_is_a_clear_error(tmp_path: Path, box_config: object) -> None:
    from engine.errors import ModelUnavailable

    state = ShopperModel(_darkness_head(), None, box_head=_fixed_head((0.1, 0.1, 0.9, 0.9))).state()
    state["box_config"] = box_config
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(ModelUnavailable, match="does not fit"):
        ShopperModel.load(tmp_path / "bad.pt")
