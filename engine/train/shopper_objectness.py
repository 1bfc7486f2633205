"""The shopper-photo model's localisers: the per-cell objectness head, the box head
(:class:`engine.models.shopper_box.BoxHead`) and the box IoUs on validation photos that choose
the threshold and the margin (:mod:`engine.train.shopper`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models.shopper import Objectness, ShopperModel
from engine.models.shopper_box import BoxHead, box_from_map

logger = logging.getLogger(__name__)

THRESHOLDS = (0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
BOX_MARGINS = (0.0, 0.03, 0.06, 0.1)


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


def giou(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Generalised IoU of (N, 4) boxes (left, top, right, bottom), elementwise."""
    inter, union = _inter_union(a, b)
    cw = torch.maximum(a[:, 2], b[:, 2]) - torch.minimum(a[:, 0], b[:, 0])
    ch = torch.maximum(a[:, 3], b[:, 3]) - torch.minimum(a[:, 1], b[:, 1])
    hull = (cw * ch).clamp(min=1e-9)
    return inter / union - (hull - union) / hull


def _inter_union(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Intersection and union (at least 1e-9) of (N, 4) boxes, elementwise."""
    iw = (torch.minimum(a[:, 2], b[:, 2]) - torch.maximum(a[:, 0], b[:, 0])).clamp(min=0)
    ih = (torch.minimum(a[:, 3], b[:, 3]) - torch.maximum(a[:, 1], b[:, 1])).clamp(min=0)
    inter = iw * ih
    area_a = (a[:, 2] - a[:, 0]).clamp(min=0) * (a[:, 3] - a[:, 1]).clamp(min=0)
    area_b = (b[:, 2] - b[:, 0]).clamp(min=0) * (b[:, 3] - b[:, 1]).clamp(min=0)
    return inter, (area_a + area_b - inter).clamp(min=1e-9)


def train_box_head(
    maps: np.ndarray,
    boxes: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int = 40,
    batch: int = 64,
    seed: int = 0,
    mid: int = 64,
    hidden: int = 256,
) -> BoxHead:
    """(1 - GIoU) + L1 to the true box, plus BCE of each cell to its object share; maps,
    boxes and cell targets flipped left-right at random (AdamW, one-cycle)."""
    torch.manual_seed(seed)
    x = torch.from_numpy(np.asarray(maps, np.float32))
    y = torch.from_numpy(np.asarray(boxes, np.float32))
    t = torch.from_numpy(np.asarray(targets, np.float32))
    head = BoxHead(x.shape[1], mid, hidden)
    flat = x.permute(0, 2, 3, 1).reshape(-1, x.shape[1])
    head.mean.copy_(flat.mean(0))
    head.std.copy_(flat.std(0).clamp(min=1e-3))
    del flat
    steps = max(1, (len(x) + batch - 1) // batch)
    opt = torch.optim.AdamW(head.parameters(), lr=1e-3, weight_decay=1e-2)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 1e-3, total_steps=epochs * steps)
    head.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x))
        for start in range(0, len(x), batch):
            idx = perm[start : start + batch]
            xb, yb, tb = x[idx], y[idx].clone(), t[idx]
            flip = torch.rand(len(idx)) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(-1), xb)
            tb = torch.where(flip[:, None, None], tb.flip(-1), tb)
            fx0, fx1 = 1.0 - yb[:, 2], 1.0 - yb[:, 0]
            yb[:, 0] = torch.where(flip, fx0, yb[:, 0])
            yb[:, 2] = torch.where(flip, fx1, yb[:, 2])
            cells, pred = head(xb)
            loss = (
                (1.0 - giou(pred, yb)).mean()
                + nn.functional.l1_loss(pred, yb)
                + nn.functional.binary_cross_entropy_with_logits(cells, tb)
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
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


def regressed_iou(pred: np.ndarray, truth: np.ndarray, margin: float) -> float:
    """Mean IoU of regressed boxes widened by ``margin`` (clipped to the square) with the true
    boxes, both (N, 4) shares of the side."""
    w, h = pred[:, 2] - pred[:, 0], pred[:, 3] - pred[:, 1]
    wide = np.clip(pred + margin * np.stack([-w, -h, w, h], axis=1), 0.0, 1.0)
    inter, union = _inter_union(torch.from_numpy(wide), torch.from_numpy(truth))
    return float((inter / union).mean())


def fit_localisers(train: Any, val: Any, seed: int) -> tuple[Any, BoxHead | None, dict[str, Any]]:
    """The objectness head (threshold by validation box IoU) and, when the sets carry true
    boxes, the box head (margin by validation IoU). Returns (objectness, box head, metrics with
    ``threshold`` and ``box_margin``)."""
    n = len(train.maps)
    head = train_objectness(train.maps, train.targets[:n], seed=seed)
    vmaps = val.maps.astype(np.float32)
    probs = ShopperModel(head, None).object_probability(vmaps)
    ious = {
        th: float(
            np.mean([box_iou(p, tg, th, 0.06) for p, tg in zip(probs, val.targets, strict=True)])
        )
        for th in THRESHOLDS
    }
    norm = ShopperModel(None, None).object_probability(vmaps)
    norm_iou = max(
        float(np.mean([box_iou(p, tg, th, 0.06) for p, tg in zip(norm, val.targets, strict=True)]))
        for th in (0.3, 0.5, 0.7)
    )
    logger.info(
        "objectness box IoU on validation by threshold: %s (feature norm %.3f)", ious, norm_iou
    )
    metrics: dict[str, Any] = {
        "objectness_iou": ious,
        "feature_norm_iou": norm_iou,
        "threshold": max(ious, key=lambda k: ious[k]),
    }
    box_head = None
    if train.boxes is not None and val.boxes is not None:
        box_head = train_box_head(train.maps, train.boxes[:n], train.targets[:n], seed=seed)
        pred = box_head.boxes(vmaps)
        by_margin = {m: regressed_iou(pred, val.boxes, m) for m in BOX_MARGINS}
        logger.info("box head IoU on validation by margin: %s", by_margin)
        metrics.update(
            box_head_iou=by_margin, box_margin=max(by_margin, key=lambda k: by_margin[k])
        )
        if max(by_margin.values()) <= max(ious.values()):  # a small or failed run: not served
            logger.warning(
                "the box head's validation IoU is no better than the cells' box: dropped"
            )
            box_head = None
    return head, box_head, metrics
