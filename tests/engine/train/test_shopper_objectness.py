"""The box head learns where the object is in a map; IoU and the margin choice."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch

from engine.train.shopper_objectness import (
    BOX_MARGINS,
    THRESHOLDS,
    fit_localisers,
    giou,
    regressed_iou,
    train_box_head,
)


def _maps(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maps whose first channels light up on the object's cells, the true box (shares of the
    side) and the cells' object shares."""
    rng = np.random.default_rng(seed)
    maps = rng.normal(0, 0.3, (n, 64, 7, 7)).astype(np.float32)  # 64 channels: fast
    boxes, targets = np.zeros((n, 4), np.float32), np.zeros((n, 7, 7), np.float32)
    for i in range(n):
        x0, y0 = rng.integers(0, 4, 2)
        x1, y1 = x0 + rng.integers(2, 8 - x0), y0 + rng.integers(2, 8 - y0)
        maps[i, :8, y0:y1, x0:x1] += 2.0
        targets[i, y0:y1, x0:x1] = 1.0
        boxes[i] = (x0 / 7, y0 / 7, min(x1, 7) / 7, min(y1, 7) / 7)
    return maps, boxes, targets


def test_giou_and_iou_of_known_boxes() -> None:
    a = torch.tensor([[0.0, 0.0, 0.5, 0.5], [0.0, 0.0, 0.2, 0.2]])
    b = torch.tensor([[0.25, 0.0, 0.75, 0.5], [0.8, 0.8, 1.0, 1.0]])
    g = giou(a, b)
    assert abs(float(g[0]) - 1 / 3 - 0.0) < 1e-6  # IoU 1/3, the hull is the union
    assert float(g[1]) < 0  # disjoint: negative, not zero
    assert abs(regressed_iou(a.numpy(), b.numpy(), 0.0) - (1 / 3 + 0) / 2) < 1e-6
    assert regressed_iou(b.numpy(), b.numpy(), 0.0) == 1.0
    assert regressed_iou(b.numpy(), b.numpy(), 0.1) < 1.0  # widened past the truth


def test_box_head_finds_the_lit_cells() -> None:
    maps, boxes, targets = _maps(400, 0)
    head = train_box_head(maps, boxes, targets, epochs=30, batch=32, mid=16, hidden=32)
    vmaps, vboxes, _ = _maps(100, 1)
    trained = regressed_iou(head.boxes(vmaps), vboxes, 0.0)
    constant = regressed_iou(np.tile(boxes.mean(0), (100, 1)), vboxes, 0.0)
    assert trained > 0.7 and trained > constant + 0.25


def test_fit_localisers_chooses_a_threshold_and_a_margin() -> None:
    maps, boxes, targets = _maps(120, 2)
    vmaps, vboxes, vtargets = _maps(40, 3)
    train = SimpleNamespace(maps=maps.astype(np.float16), boxes=boxes, targets=targets)
    val = SimpleNamespace(maps=vmaps.astype(np.float16), boxes=vboxes, targets=vtargets)
    head, box_head, metrics = fit_localisers(train, val, seed=0)
    assert metrics["threshold"] in THRESHOLDS and metrics["box_margin"] in BOX_MARGINS
    assert set(metrics["box_head_iou"]) == set(BOX_MARGINS)
    # served only when it beats the cells' box on validation
    better = max(metrics["box_head_iou"].values()) > max(metrics["objectness_iou"].values())
    assert (box_head is not None) == better
    no_boxes = SimpleNamespace(maps=train.maps, boxes=None, targets=targets)
    assert fit_localisers(no_boxes, val, seed=0)[1] is None
