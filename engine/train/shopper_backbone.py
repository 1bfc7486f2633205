"""Fine-tune the backbone's last stages for shopper photos' object crops.

The objectness box of a shopper photo crops the garment, but around and behind it are carpet,
wood and shadows, and its light and colour are off: the packaged backbone's pooled features of
that crop are far from those of the studio packshot (mean cosine 0.68 on synthetic validation
photos, true box). The blocks from ``split`` on (and the head convolution; batch-norm
statistics frozen) are fine-tuned so that a synthetic photo's object crop gets the pooled
features of its studio photo (1 - cosine, plus a small squared error), from the outputs of the
frozen first blocks, computed once per synthetic photo with the other inputs
(:func:`engine.train.shopper_data.compute`, ``prefix``). The studio features (and so the
indexed vectors) do not change: nothing is re-indexed.

Measured on the 760 validation items: cosine to the studio features 0.676 -> 0.894 (split 11)
and 0.903 (split 8, the default), 2,000 training items x 4 photos, 6 epochs. A first look
(2,000 x 2 photos, split 11, true box jittered 8%, the query tower trained on the packaged
backbone reading the adapted features): exact recall@10 0.711 -> 0.758, the attribute head's
type top-1 0.780 -> 0.811.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch import nn

from engine.models.backbone_tail import BackboneTail, apply_tail, tail_state
from engine.models.encoders import preprocess_images

logger = logging.getLogger(__name__)

# Lite0: blocks 8-15 (the last 14 x 14 stage and the 7 x 7 stages) + head convolution, ~3.1 M
# values. Chosen on the 760 validation photos (served category step, localised photos): split
# 11 type P@10 0.771 / recall@10 0.578, split 8 0.778 / 0.603.
DEFAULT_SPLIT = 8


class _Tail(nn.Module):
    """Blocks ``split``.. + head convolution of an EfficientNet-Lite model, spatial mean."""

    def __init__(self, model: nn.Module, split: int) -> None:
        super().__init__()
        self.blocks = nn.ModuleList(copy.deepcopy(list(model._blocks)[split:]))
        self.conv_head = copy.deepcopy(model._conv_head)
        self.bn1 = copy.deepcopy(model._bn1)
        self.act = model._swish
        self.split = split

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return self.act(self.bn1(self.conv_head(x))).mean(dim=(2, 3))

    def backbone_state(self, model: nn.Module) -> dict[str, torch.Tensor]:
        """These weights under the backbone's own state-dict names."""
        grafted = copy.deepcopy(model)
        for i, block in enumerate(self.blocks):
            grafted._blocks[self.split + i].load_state_dict(block.state_dict())
        grafted._conv_head.load_state_dict(self.conv_head.state_dict())
        grafted._bn1.load_state_dict(self.bn1.state_dict())
        return tail_state(grafted, self.split)


def prefix_function(
    model: nn.Module, split: int, image_size: int = 224
) -> Callable[[list[Image.Image]], np.ndarray]:
    """Images -> outputs of the frozen blocks before ``split`` (float16)."""
    model = copy.deepcopy(model).float().eval().to(memory_format=torch.contiguous_format)
    blocks = list(model._blocks)[:split]

    @torch.inference_mode()
    def run(images: list[Image.Image]) -> np.ndarray:
        x = preprocess_images(images, image_size)
        x = model._swish(model._bn0(model._conv_stem(x)))
        for block in blocks:
            x = block(x)
        return x.numpy().astype(np.float16)

    return run


@dataclass
class StudioTeacher:
    """The studio photos' type distributions as a target for the tail (see :func:`train_tail`):
    ``head`` a frozen photo type head over image inputs (pooled features + colour inputs),
    ``colour`` each training crop's colour inputs, ``probs`` its studio photo's distribution."""

    head: nn.Module
    colour: np.ndarray
    probs: np.ndarray
    weight: float = 0.3

    def __post_init__(self) -> None:
        self.head = copy.deepcopy(self.head).float().eval()
        for p in self.head.parameters():
            p.requires_grad_(False)
        self._colour = torch.from_numpy(np.asarray(self.colour, np.float32))
        self._log_target = (
            torch.from_numpy(np.asarray(self.probs, np.float32)).clamp_min(1e-8).log()
        )

    def loss(self, pooled: torch.Tensor, rows: np.ndarray) -> torch.Tensor:
        idx = torch.from_numpy(np.asarray(rows, np.int64))
        logits = self.head(torch.cat([pooled, self._colour[idx]], dim=1))
        return nn.functional.kl_div(
            nn.functional.log_softmax(logits, dim=-1),
            self._log_target[idx],
            log_target=True,
            reduction="batchmean",
        )


def _batches(maps: np.ndarray, idx: np.ndarray, size: int):
    for s in range(0, len(idx), size):
        part = idx[s : s + size]
        yield part, torch.from_numpy(maps[part].astype(np.float32))


def pooled(tail: nn.Module, maps: np.ndarray, batch: int = 256) -> np.ndarray:
    tail.eval()
    with torch.inference_mode():
        out = [tail(x) for _, x in _batches(maps, np.arange(len(maps)), batch)]
    return torch.cat(out).numpy().astype(np.float32) if out else np.zeros((0, 1280), np.float32)


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    return float(np.mean(np.sum(a * b, axis=1) / np.maximum(na * nb, 1e-9)))


def train_tail(
    model: nn.Module,
    split: int,
    maps: np.ndarray,
    targets: np.ndarray,
    *,
    val: tuple[np.ndarray, np.ndarray] | None = None,
    epochs: int = 6,
    lr: float = 3e-4,
    batch: int = 64,
    mse_weight: float = 0.1,
    labels: np.ndarray | None = None,
    type_weight: float = 0.0,
    teacher: StudioTeacher | None = None,
    seed: int = 0,
) -> tuple[BackboneTail, dict[str, float]]:
    """Fine-tune (see the module docstring): ``maps`` the prefix outputs of the object crops,
    ``targets`` their studio photos' pooled features. With ``labels`` (article-type indices,
    -1 unknown) and ``type_weight`` > 0, a linear type probe on the pooled features (dropped
    afterwards) adds ``type_weight`` x its cross-entropy, so the adapted features also keep
    types apart. With ``teacher``, the frozen studio type head must read each crop's adapted
    features (with its colour inputs) as it reads its studio photo: ``teacher.weight`` x the
    KL divergence of the two distributions. Returns the tail and its numbers."""
    torch.manual_seed(seed)
    tail = _Tail(copy.deepcopy(model).float().to(memory_format=torch.contiguous_format), split)
    y_all = torch.from_numpy(np.asarray(targets, np.float32))
    report: dict[str, float] = {}
    if val is not None:
        report["val_cosine_before"] = round(_cosine(pooled(tail, val[0]), val[1]), 4)
    params = list(tail.parameters())
    probe: nn.Module | None = None
    if labels is not None and type_weight > 0 and (np.asarray(labels) >= 0).any():
        lab = torch.from_numpy(np.asarray(labels, np.int64))
        probe = nn.Linear(int(y_all.shape[1]), int(lab.max()) + 1)
        params += list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=1e-2)
    steps = epochs * ((len(maps) + batch - 1) // batch)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=max(steps, 1))
    rng = np.random.default_rng(seed)
    for epoch in range(epochs):
        tail.train()
        for m in tail.modules():  # batch-norm statistics stay the packaged backbone's
            if isinstance(m, nn.BatchNorm2d):
                m.eval()
        t0, total = time.time(), 0.0
        for part, x in _batches(maps, rng.permutation(len(maps)), batch):
            f, y = tail(x), y_all[part]
            loss = (1 - nn.functional.cosine_similarity(f, y)).mean()
            loss = loss + mse_weight * nn.functional.mse_loss(f, y)
            if probe is not None:
                loss = loss + type_weight * nn.functional.cross_entropy(
                    probe(f), lab[part], ignore_index=-1
                )
            if teacher is not None:
                loss = loss + teacher.weight * teacher.loss(f, part)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * len(part)
        msg = f"backbone tail epoch {epoch}: loss {total / max(len(maps), 1):.4f}"
        if val is not None:
            report["val_cosine"] = round(_cosine(pooled(tail, val[0]), val[1]), 4)
            msg += f", validation cosine to studio {report['val_cosine']:.4f}"
        logger.info("%s (%.0f s)", msg, time.time() - t0)
    return BackboneTail(split, tail.backbone_state(model)), report


def adapted_pooled(model: nn.Module, tail: BackboneTail, maps: np.ndarray) -> np.ndarray:
    """Pooled features of prefix outputs through ``tail``'s weights."""
    grafted = copy.deepcopy(model).float().to(memory_format=torch.contiguous_format)
    apply_tail(grafted, tail.split, tail.state)
    return pooled(_Tail(grafted, tail.split), maps)


__all__ = ["DEFAULT_SPLIT", "StudioTeacher", "adapted_pooled", "prefix_function", "train_tail"]
