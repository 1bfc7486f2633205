"""The shopper-photo model's objectness head: training and the box IoU that chooses its
threshold (:mod:`engine.train.shopper`)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from engine.models.shopper import Objectness, box_from_map


def train_objectness(
    maps: np.ndarray, targets: np.ndarray, *, epochs: int = 30, seed: int = 0
) -> Objectness:
    torch.manual_seed(seed)
    x = torch.from_numpy(maps.astype(np.float32)).permute(0, 2, 3, 1).reshape(-1, maps.shape[1])
    y = torch.from_numpy(targets.reshape(-1).astype(np.float32))
    head = Objectness(maps.shape[1])
    head.mean.copy_(x.mean(0))
    head.std.copy_(x.std(0).clamp(min=1e-3))
    opt = torch.optim.AdamW(head.linear.parameters(), lr=3e-3, weight_decay=1e-3)
    xs = (x - head.mean) / head.std
    for _ in range(epochs):
        perm = torch.randperm(len(y))
        for start in range(0, len(y), 4096):
            idx = perm[start : start + 4096]
            loss = nn.functional.binary_cross_entropy_with_logits(
                head.linear(xs[idx]).squeeze(-1), y[idx]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
    return head.eval()


def _iou(a: tuple[int, ...], b: tuple[int, ...]) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union > 0 else 0.0


def box_iou(prob: np.ndarray, target: np.ndarray, threshold: float, margin: float) -> float:
    """IoU of the box from ``prob`` and the true box (cells over half object), 224 px square."""
    truth = box_from_map(target, 224, 0.5, 0.0)
    pred = box_from_map(prob, 224, threshold, margin)
    full = (0, 0, 224, 224)
    return _iou(pred[0] if pred else full, truth[0] if truth else full)
