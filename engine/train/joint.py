"""Train the joint image-text heads: ``python -m engine.train joint``.

Data: the catalog split by :func:`engine.catalog.is_test_id` (test items are never trained on);
a validation slice of the training items (sha1("val:"+id) % 10 == 0) picks nothing but is
reported, so the test split stays untouched until evaluation. Pairs are (photo, product text)
for every training item with a 224px photo, optionally plus the 60x80 photos of
``images_60x80.tar.gz`` (all catalog items). The text side of ALL training items (44k) also
trains the text tower and the shared attribute head.

Loss: symmetric InfoNCE with a learnable temperature over (image, text) pairs, where the text
is randomly the full product text, the title or a short attribute phrase (query-like), plus
attribute cross-entropies on image and text embeddings, plus a supervised contrastive loss
pulling together photos of the same article type and colour. Batches are half random and half drawn
from one (article type, gender) group: hard negatives for exact-item retrieval. Image inputs are
augmented in feature space (Gaussian noise, input dropout).

Outputs: the checkpoint (default ``engine/models/weights/joint.pt``) and a JSON report.

The data side (vocabularies, labels, text variants, image inputs) is
:mod:`engine.train.joint_data`; its names stay importable from here.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.catalog import is_test_id
from engine.cli import CommandParser, setup_logging
from engine.models.binary import BinaryCoder
from engine.models.encoders import IMAGE_FEATURE_DIM, apply_num_threads
from engine.models.features import IMAGE_INPUT_DIM
from engine.models.joint import (
    DEFAULT_CHECKPOINT,
    JointModel,
    build_net,
)
from engine.settings import DEFAULT_SHARED_DATA
from engine.train import metrics as M
from engine.train.features import (
    DEFAULT_CACHE_DIR,
)
from engine.train.joint_data import TEXT_VARIANTS, Dataset, TrainConfig, is_val_id, prepare
from engine.train.joint_data import prepare_products as prepare_products  # engine.train.fit

logger = logging.getLogger(__name__)


class _Batcher:
    """Half random, half from one (article type, gender) group."""

    def __init__(self, groups: list[str], batch_size: int, hard_fraction: float, seed: int):
        self.n = len(groups)
        self.batch_size = min(batch_size, self.n)
        self.hard = int(round(self.batch_size * hard_fraction))
        self.rng = np.random.default_rng(seed)
        by: dict[str, list[int]] = defaultdict(list)
        for i, g in enumerate(groups):
            by[g].append(i)
        self.groups = [np.asarray(v) for v in by.values() if len(v) >= 8]
        sizes = np.asarray([len(g) for g in self.groups], dtype=np.float64)
        self.group_p = np.sqrt(sizes) / np.sqrt(sizes).sum() if len(sizes) else sizes

    def epoch(self) -> list[np.ndarray]:
        perm = self.rng.permutation(self.n)
        n_batches = max(1, self.n // self.batch_size)
        batches = []
        for b in range(n_batches):
            rand = perm[b * self.batch_size : (b + 1) * self.batch_size]
            if self.hard and self.groups:
                g = self.groups[self.rng.choice(len(self.groups), p=self.group_p)]
                hard = self.rng.choice(g, size=min(self.hard, len(g)), replace=False)
                rand = np.unique(np.concatenate([hard, rand[: self.batch_size - len(hard)]]))
            batches.append(rand)
        return batches


def _contrastive(img: torch.Tensor, txt: torch.Tensor, scale: torch.Tensor, same: torch.Tensor):
    logits = scale * img @ txt.T
    # Rows whose texts are identical (same product text) are not negatives of each other.
    logits = logits.masked_fill(same & ~torch.eye(len(img), dtype=torch.bool), float("-inf"))
    target = torch.arange(len(img))
    return 0.5 * (
        nn.functional.cross_entropy(logits, target) + nn.functional.cross_entropy(logits.T, target)
    )


def _supcon(emb: torch.Tensor, keys: np.ndarray, temperature: float) -> torch.Tensor:
    """Supervised contrastive loss: photos with the same key (type|colour) attract."""
    pos = torch.from_numpy(keys[:, None] == keys[None, :])
    eye = torch.eye(len(keys), dtype=torch.bool)
    pos = pos & ~eye
    has = pos.any(dim=1)
    if not bool(has.any()):
        return emb.new_zeros(())
    sims = (emb @ emb.T / temperature).masked_fill(eye, float("-inf"))
    log_prob = sims - torch.logsumexp(sims, dim=1, keepdim=True)
    log_prob = log_prob.masked_fill(~pos, 0.0)
    per_anchor = -log_prob.sum(dim=1)[has] / pos.sum(dim=1)[has]
    return per_anchor.mean()


def _attr_loss(net: Any, emb: torch.Tensor, labels: list[torch.Tensor]) -> torch.Tensor:
    total = emb.new_zeros(())
    for logits, y in zip(net.attribute_logits(emb), labels, strict=True):
        if (y >= 0).any():
            total = total + nn.functional.cross_entropy(logits, y, ignore_index=-1)
    return total / max(1, len(labels))


def evaluate_split(model: JointModel, data: Dataset, rows: np.ndarray) -> dict[str, float]:
    """Joint metrics over the given image rows (224px photos of one split)."""
    prod_idx = data.image_rows[rows]
    return M.joint_metrics(
        model,
        data.image[rows],
        [data.products[i] for i in prod_idx],
        data.text["full"][prod_idx],
        data.text["title"][prod_idx],
    )


def train(data: Dataset, cfg: TrainConfig) -> tuple[JointModel, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    # The heads are small: one intra-op thread is as fast and degrades gracefully on a busy CPU
    # (two OpenMP threads on an oversubscribed 2-core box were measured 3-5x slower per step).
    apply_num_threads(1)
    ids = [p.id for p in data.products]
    is_test = np.asarray([is_test_id(i) for i in ids])
    is_val = np.asarray([is_val_id(i) for i in ids])
    prod_train = ~is_test & ~is_val
    pair_train = np.flatnonzero(prod_train[data.image_rows])
    val_rows = np.flatnonzero(is_val[data.image_rows] & (data.image_source == 0))
    text_only = np.flatnonzero(prod_train)
    logger.info(
        "pairs: %d train (%d small), %d val photos; %d training texts",
        len(pair_train),
        int((data.image_source[pair_train] == 1).sum()),
        len(val_rows),
        len(text_only),
    )

    image_x = data.image
    config = {
        "dim": cfg.dim,
        "hidden": cfg.hidden,
        "dropout": cfg.dropout,
        "image_in": IMAGE_INPUT_DIM,
        "text_in": data.text["full"].shape[1],
        "use_colour": cfg.use_colour,
        "attribute_fields": {k: v for k, v in data.fields.items() if k in data.vocab},
    }
    net = build_net(config, data.vocab)
    tr_img = image_x[pair_train]
    mean = tr_img.mean(axis=0)
    std = tr_img.std(axis=0) + 1e-3
    if not cfg.use_colour:  # ablation: colour inputs standardise to ~0 and carry nothing
        mean[IMAGE_FEATURE_DIM:], std[IMAGE_FEATURE_DIM:] = 0.0, 1e6
    net.image_tower.mean.copy_(torch.from_numpy(mean))
    net.image_tower.std.copy_(torch.from_numpy(std))
    tr_txt = data.text["full"][text_only]
    net.text_tower.mean.copy_(torch.from_numpy(tr_txt.mean(axis=0)))
    net.text_tower.std.copy_(torch.from_numpy(tr_txt.std(axis=0) + 1e-3))

    labels_t = {k: torch.from_numpy(v) for k, v in data.labels.items()}
    names = list(data.vocab)
    texts_t = {k: torch.from_numpy(v) for k, v in data.text.items()}
    variants = list(texts_t)
    image_t = torch.from_numpy(image_x)
    rows_t = torch.from_numpy(data.image_rows)
    # Per variant, a key per product: identical texts in a batch are not negatives.
    text_keys = {
        name: np.asarray([hashlib.sha1(fn(p).encode()).hexdigest()[:12] for p in data.products])
        for name, fn in TEXT_VARIANTS.items()
    }
    groups = [
        f"{data.products[data.image_rows[i]].article_type}|{data.products[data.image_rows[i]].gender}"
        for i in pair_train
    ]
    type_colour = np.asarray([f"{p.article_type}|{p.base_colour}" for p in data.products])
    batcher = _Batcher(groups, cfg.batch_size, cfg.hard_fraction, cfg.seed)
    text_rng = np.random.default_rng(cfg.seed + 1)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = len(batcher.epoch())
    total_steps = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt,
        lambda s: (
            min(1.0, (s + 1) / max(1, steps_per_epoch))
            * 0.5
            * (1 + math.cos(math.pi * min(1.0, s / total_steps)))
        ),
    )
    history: list[dict[str, float]] = []
    probs = np.asarray(cfg.variant_probs, dtype=np.float64)
    probs = probs / probs.sum()
    t0 = time.time()
    bar = tqdm(range(cfg.epochs), desc="train joint", unit="epoch")
    for epoch in bar:
        net.train()
        losses = []
        for batch in batcher.epoch():
            pair_idx = pair_train[batch]
            prod_idx = rows_t[pair_idx]
            x = image_t[pair_idx]
            if cfg.input_noise > 0:
                x = x + cfg.input_noise * torch.randn_like(x) * torch.from_numpy(std)
            if cfg.input_dropout > 0:
                x = x * (torch.rand_like(x) > cfg.input_dropout) / (1 - cfg.input_dropout)
            choice = text_rng.choice(len(variants), size=len(batch), p=probs)
            t = torch.stack(
                [texts_t[variants[c]][int(i)] for c, i in zip(choice, prod_idx, strict=True)]
            )
            keys = np.asarray(
                [text_keys[variants[c]][int(i)] for c, i in zip(choice, prod_idx, strict=True)]
            )
            same = torch.from_numpy(keys[:, None] == keys[None, :])
            ei = net.embed_image(x)
            et = net.embed_text(t)
            scale = net.logit_scale.exp().clamp(max=100.0)
            loss = _contrastive(ei, et, scale, same)
            ys = [labels_t[n][prod_idx] for n in names]
            loss = loss + cfg.attr_weight * _attr_loss(net, ei, ys)
            if cfg.supcon_weight > 0:
                loss = loss + cfg.supcon_weight * _supcon(
                    ei, type_colour[prod_idx.numpy()], cfg.supcon_temperature
                )
            loss = loss + cfg.text_attr_weight * _attr_loss(net, et, ys)
            # Text side of all training items (most have no 224px photo).
            tsel = torch.from_numpy(text_rng.choice(text_only, size=cfg.batch_size // 2))
            vsel = text_rng.choice(len(variants), p=probs)
            et2 = net.embed_text(texts_t[variants[vsel]][tsel])
            loss = loss + cfg.text_attr_weight * _attr_loss(
                net, et2, [labels_t[n][tsel] for n in names]
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            losses.append(float(loss.detach()))
        entry = {"epoch": epoch + 1, "loss": float(np.mean(losses))}
        if (epoch + 1) % 10 == 0 or epoch + 1 == cfg.epochs:
            model = JointModel(net, data.vocab, None, config=config, device="cpu")
            entry.update(evaluate_split(model, data, val_rows))
            net.train()
        history.append(entry)
        elapsed = time.time() - t0
        if (
            cfg.max_seconds is not None
            and epoch + 1 < cfg.epochs
            and elapsed * (epoch + 2) / (epoch + 1) > cfg.max_seconds
        ):
            logger.warning(
                "joint training stopped after epoch %d of %d: time budget of %.0f s",
                epoch + 1,
                cfg.epochs,
                cfg.max_seconds,
            )
            entry["stopped_by_budget"] = 1.0
            break
        bar.set_postfix(
            loss=f"{entry['loss']:.3f}", scale=f"{float(net.logit_scale.detach().exp()):.1f}"
        )
    net.eval()
    model = JointModel(net, data.vocab, None, config=config, device="cpu")
    # Binary codes: PCA+ITQ on training image and text embeddings.
    sample = np.concatenate(
        [
            model.embed_image_features(image_x[pair_train]),
            model.embed_text_features(data.text["full"][text_only[:20000]]),
        ]
    )
    model.binary = BinaryCoder.fit(sample, n_bits=min(cfg.n_bits, cfg.dim), seed=cfg.seed)
    report = {
        "config": asdict(cfg),
        "seconds_training": time.time() - t0,
        "n_train_pairs": int(len(pair_train)),
        "n_val_photos": int(len(val_rows)),
        "n_train_texts": int(len(text_only)),
        "history": history,
        "val": history[-1],
        "temperature": float(1.0 / net.logit_scale.detach().exp()),
    }
    return model, report


def test_metrics(model: JointModel, data: Dataset) -> dict[str, float]:
    ids = [p.id for p in data.products]
    is_test = np.asarray([is_test_id(i) for i in ids])
    rows = np.flatnonzero(is_test[data.image_rows] & (data.image_source == 0))
    return evaluate_split(model, data, rows)


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine.train joint", __doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=TrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=TrainConfig.batch_size)
    parser.add_argument("--lr", type=float, default=TrainConfig.lr)
    parser.add_argument("--dim", type=int, default=TrainConfig.dim)
    parser.add_argument("--hidden", type=int, default=TrainConfig.hidden)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_SHARED_DATA / "catalog.jsonl.gz")
    parser.add_argument("--images", type=Path, default=DEFAULT_SHARED_DATA / "images")
    parser.add_argument(
        "--small-images",
        type=Path,
        default=None,
        help="images_60x80.tar.gz: add its photos of all training items as extra pairs",
    )
    parser.add_argument(
        "--small-image-size",
        type=int,
        default=TrainConfig.small_image_size,
        help="encoder input size for the --small-images photos (features cached per size)",
    )
    parser.add_argument(
        "--supcon-weight",
        type=float,
        default=TrainConfig.supcon_weight,
        help="weight of the image-image supervised contrastive loss (same type and colour)",
    )
    parser.add_argument("--no-colour", action="store_true", help="ablation: drop colour inputs")
    parser.add_argument(
        "--photographed-only",
        action="store_true",
        help="quick run: only items with a 224px photo (no text-only training items)",
    )
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument("--report", type=Path, default=None, help="default: <out>.metrics.json")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--report-test",
        action="store_true",
        help="also report test-split metrics (the evaluation task does this too)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    cfg = TrainConfig(
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        dim=args.dim,
        hidden=args.hidden,
        supcon_weight=args.supcon_weight,
        use_colour=not args.no_colour,
        small_images=args.small_images is not None,
        small_image_size=args.small_image_size,
        photographed_only=args.photographed_only,
        num_threads=args.threads,
    )
    apply_num_threads(cfg.num_threads)
    t0 = time.time()
    data = prepare(
        args.catalog, args.images, small_tar=args.small_images, cfg=cfg, cache_dir=args.cache_dir
    )
    t_feat = time.time() - t0
    model, report = train(data, cfg)
    report["seconds_features"] = t_feat
    if args.report_test:
        report["test"] = test_metrics(model, data)
    out = model.save(args.out)
    report["checkpoint"] = str(out)
    report["checkpoint_bytes"] = out.stat().st_size
    report_path = args.report or out.with_suffix(".metrics.json")
    report_path.write_text(json.dumps(report, indent=2, default=float))
    logger.info("wrote %s (%d bytes) and %s", out, out.stat().st_size, report_path)
    print(json.dumps({"val": report["val"], "test": report.get("test")}, indent=2))
    return 0
