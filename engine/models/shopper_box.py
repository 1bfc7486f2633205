"""Box regression for shopper photos: the object's box read straight off the backbone map.

The linear :class:`engine.models.shopper.Objectness` head scores each cell of the 7 x 7 map on
its own and a threshold turns the cells into a box; on synthetic validation photos that box has
a mean IoU of ~0.6 with the true one, and localisation was the step that cost photo search
most (the true box instead of it: type precision@10 0.78 -> 0.83). :class:`BoxHead` looks at the
whole map at once: two small convolutions, then a dense layer over all 49 cells regresses the
box (left, top, right, bottom as shares of the padded square's side), trained with GIoU + L1
(plus a per-cell object-share term on the convolutions, :mod:`engine.train.shopper_objectness`).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.models.encoders import IMAGE_FEATURE_DIM

MAP_CELLS = 7


class BoxHead(nn.Module):
    """(N, C, 7, 7) maps -> (cell logits (N, 7, 7), boxes (N, 4) in [0, 1], sorted)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(
        self,
        channels: int = IMAGE_FEATURE_DIM,
        mid: int = 64,
        hidden: int = 256,
        dropout: float = 0.3,
    ) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(channels))
        self.register_buffer("std", torch.ones(channels))
        self.trunk = nn.Sequential(
            nn.Conv2d(channels, mid, 1),
            nn.ReLU(),
            nn.Conv2d(mid, mid, 3, padding=1),
            nn.ReLU(),
        )
        self.cells = nn.Conv2d(mid, 1, 1)
        self.box = nn.Sequential(
            nn.Flatten(),
            nn.Dropout(dropout),
            nn.Linear(mid * MAP_CELLS * MAP_CELLS, hidden),
            nn.ReLU(),
            nn.Linear(hidden, 4),
        )

    @property
    def shape(self) -> dict[str, int]:
        """What :meth:`from_shape` needs to rebuild this head (stored in the checkpoint)."""
        first: nn.Conv2d = self.trunk[0]  # type: ignore[assignment]
        hidden: nn.Linear = self.box[2]  # type: ignore[assignment]
        return {
            "channels": int(first.in_channels),
            "mid": int(first.out_channels),
            "hidden": int(hidden.out_features),
        }

    @classmethod
    def from_shape(cls, shape: dict[str, int]) -> BoxHead:
        return cls(int(shape["channels"]), int(shape["mid"]), int(shape["hidden"]))

    def forward(self, maps: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        x = (maps - self.mean[None, :, None, None]) / self.std[None, :, None, None]
        h = self.trunk(x)
        raw = torch.sigmoid(self.box(h))
        x0, x1 = torch.minimum(raw[:, 0], raw[:, 2]), torch.maximum(raw[:, 0], raw[:, 2])
        y0, y1 = torch.minimum(raw[:, 1], raw[:, 3]), torch.maximum(raw[:, 1], raw[:, 3])
        return self.cells(h)[:, 0], torch.stack([x0, y0, x1, y1], dim=1)

    def boxes(self, maps: np.ndarray) -> np.ndarray:
        """(N, 4) boxes (left, top, right, bottom) as shares of the square's side."""
        with torch.inference_mode():
            _, box = self(torch.from_numpy(np.asarray(maps, np.float32)))
        return box.numpy()


def square_box(
    box: np.ndarray, side: int, margin: float
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """A regressed box (shares of the side) in a ``side`` x ``side`` square's pixels, widened
    by ``margin`` of its size on each side, and its rectangle mask; None when degenerate."""
    left, top, right, bottom = (float(v) * side for v in box)
    mx, my = margin * (right - left), margin * (bottom - top)
    x0, y0 = max(0, round(left - mx)), max(0, round(top - my))
    x1, y1 = min(side, round(right + mx)), min(side, round(bottom + my))
    if x1 - x0 < 2 or y1 - y0 < 2:
        return None
    mask = np.zeros((side, side), bool)
    mask[y0:y1, x0:x1] = True
    return (x0, y0, x1, y1), mask


def box_from_map(
    prob: np.ndarray, side: int, threshold: float, margin: float
) -> tuple[tuple[int, int, int, int], np.ndarray] | None:
    """The box (in a ``side`` x ``side`` square) of the cells over ``threshold`` of an (h, w)
    probability map, widened by ``margin``, and the upsampled mask; None when no cell is."""
    up = torch.nn.functional.interpolate(
        torch.from_numpy(np.ascontiguousarray(prob, np.float32))[None, None],
        size=(side, side),
        mode="bilinear",
        align_corners=False,
    )[0, 0].numpy()
    mask = up >= threshold
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    top, bottom, left, right = int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1
    mx, my = int(margin * (right - left)) + 1, int(margin * (bottom - top)) + 1
    box = (max(0, left - mx), max(0, top - my), min(side, right + mx), min(side, bottom + my))
    return box, mask
