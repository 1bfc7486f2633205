"""The shopper type head and the category step for shopper photos, chosen on validation.

The category step restricts photo search to the predicted article type, so on shopper photos
its top-1 caps type precision@10. Here:

* :func:`train_type_head`: a small MLP (:class:`engine.models.shopper.TypeHead`) over both
  granularities' query-tower embeddings and backbone inputs of synthetic photos of TRAINING
  items (the true box jittered, as the query tower trains), cross-entropy with label smoothing
  and feature noise;
* :func:`choose_category_step`: on localised VALIDATION photos (as served), the mix of the
  head with the attribute head (``type_weight``) and the classifier/vote weight
  (``category_alpha``) with the best category top-1, then the restriction threshold
  (``category_threshold``) with the best type precision@10 of restricted exact k-NN (ties:
  exact-item recall@10).
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.models.shopper import TypeHead
from engine.search.category import predict_category
from engine.train.ensemble import merge_logit_heads

logger = logging.getLogger(__name__)


def train_type_head(
    x: np.ndarray,
    y: np.ndarray,
    n_types: int,
    *,
    hidden: int = 512,
    epochs: int = 20,
    smoothing: float = 0.1,
    noise: float = 0.05,
    seed: int = 0,
    members: int = 1,
) -> TypeHead:
    """``x`` (N, D) features (:meth:`ShopperModel.type_features`), ``y`` type indices (-1:
    unknown, dropped). ``members`` > 1: that many heads (seeds ``seed``, ``seed + 1``, ...)
    merged into one whose logits are their mean (:func:`merge_type_heads`)."""
    if members > 1:
        heads = [
            train_type_head(
                x,
                y,
                n_types,
                hidden=hidden,
                epochs=epochs,
                smoothing=smoothing,
                noise=noise,
                seed=seed + k,
            )
            for k in range(members)
        ]
        return merge_type_heads(heads)
    torch.manual_seed(seed)
    keep = y >= 0
    xt = torch.from_numpy(np.asarray(x[keep], np.float32))
    yt = torch.from_numpy(np.asarray(y[keep], np.int64))
    head = TypeHead(xt.shape[1], hidden, n_types)
    head.mean.copy_(xt.mean(0))
    head.std.copy_(xt.std(0).clamp(min=1e-3))
    xs = (xt - head.mean) / head.std
    opt = torch.optim.AdamW(head.net.parameters(), lr=1e-3, weight_decay=1e-2)
    steps = epochs * ((len(yt) + 255) // 256)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, 2e-3, total_steps=steps)
    for epoch in range(epochs):
        head.train()
        perm = torch.randperm(len(yt))
        total = 0.0
        for start in range(0, len(yt), 256):
            idx = perm[start : start + 256]
            xb = xs[idx] + noise * torch.randn(len(idx), xs.shape[1])
            logits = head.net(xb)
            loss = nn.functional.cross_entropy(logits, yt[idx], label_smoothing=smoothing)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(idx)
        logger.info("type head epoch %d: loss %.4f", epoch + 1, total / len(yt))
    return head.eval()


def merge_type_heads(heads: Sequence[TypeHead]) -> TypeHead:
    """One :class:`TypeHead` whose logits are the mean of ``heads``' logits
    (:func:`engine.train.ensemble.merge_logit_heads`)."""
    return merge_logit_heads(heads, TypeHead)


def _same(a: str | None, b: str | None) -> bool:
    return (a or "").lower() == (b or "").lower() and bool(a)


def choose_category_step(
    head: np.ndarray,
    attr: np.ndarray,
    vocab: Sequence[str],
    queries: np.ndarray,
    gallery: np.ndarray,
    gallery_types: Sequence[str | None],
    truth_types: Sequence[str | None],
    truth_rows: Sequence[int],
    *,
    vote_k: int = 20,
    weights: Sequence[float] = (0.0, 0.5, 0.75, 1.0),
    alphas: Sequence[float] = (0.25, 0.5, 0.75, 1.0),
    thresholds: Sequence[float] = (0.0, 0.3, 0.5, 0.7),
) -> dict[str, Any]:
    """See the module docstring; ``head``/``attr`` (N, types) distributions of the type head
    and of the attribute head on the fused query vectors."""
    sims = queries @ gallery.T
    near = np.argsort(-sims, axis=1)[:, :vote_k]
    votes = [[(gallery_types[j], float(sims[i, j])) for j in near[i]] for i in range(len(sims))]
    n = len(sims)

    def predictions(w: float, alpha: float):
        mixed = w * head + (1.0 - w) * attr
        return [
            predict_category(
                {str(v): float(p) for v, p in zip(vocab, mixed[i], strict=True)},
                votes[i],
                alpha=alpha,
                threshold=0.0,
            )
            for i in range(n)
        ]

    top1 = {}
    for w, alpha in itertools.product(weights, alphas):
        preds = predictions(w, alpha)
        top1[(w, alpha)] = float(
            np.mean([_same(p.label, t) for p, t in zip(preds, truth_types, strict=True)])
        )
    w, alpha = max(top1, key=lambda k: (top1[k], -k[0]))
    preds = predictions(w, alpha)
    types = np.asarray([(t or "").lower() for t in gallery_types], dtype=object)
    by_threshold = {}
    for th in thresholds:
        tp, rc = [], []
        for i, p in enumerate(preds):
            row = sims[i]
            if p.label is not None and p.confidence >= th:
                allowed = types == p.label.lower()
                if allowed.any():
                    row = np.where(allowed, row, -np.inf)
            top = np.argpartition(-row, 10)[:10]
            tp.append(np.mean([_same(gallery_types[j], truth_types[i]) for j in top]))
            rc.append(truth_rows[i] in top)
        by_threshold[th] = (float(np.mean(tp)), float(np.mean(rc)))
    threshold = max(by_threshold, key=lambda k: by_threshold[k])
    logger.info(
        "category step on validation: top-1 by (type weight, alpha) %s; type P@10, recall@10 "
        "by threshold %s",
        top1,
        by_threshold,
    )
    return {
        "type_weight": w,
        "category_alpha": alpha,
        "category_threshold": threshold,
        "val_category_top1": {f"{k[0]}/{k[1]}": v for k, v in top1.items()},
        "val_type_p10_recall10_by_threshold": {str(k): v for k, v in by_threshold.items()},
    }
