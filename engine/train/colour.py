"""``python -m engine.train colour``: train the joint model's colour head and add it to the checkpoint.

The joint embedding is shaped by text matching and keeps only part of a photo's colour; this
head (:class:`engine.models.joint.ColourHead`) predicts ``base_colour`` from the raw image inputs
(EfficientNet-Lite0 crop features + foreground colour descriptor). Training photos: the 224 px
photos of the training split and, with ``--small-images``, the 60x80 photos of all training
items (~28k more, encoded at 224 as ingest encodes any photo; cached under
``.cache/features/``). The 224 px photos are repeated ``--big-repeat`` times per epoch so the
abundant low-resolution ones do not dominate. Everything else in the checkpoint (towers,
attribute head, binary coder) is copied unchanged, so embeddings, indexes built with them and
the complete-the-look model stay valid.

A photo's base colour distribution is then the average of this head's and the attribute
head's (``head_weight`` 0.5). The recipe (224 px x3 + 60x80 photos, 20 epochs, input noise
0.3, label smoothing 0.1, equal weights) was chosen on the validation slice of the training
split (``is_val_id``), never on test items. Reported: top-1 base colour on validation and test
photos whose colour is among the 12 most frequent of the catalog, combined vs the attribute head
alone, in ``<out>.colour.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.catalog import Product, is_test_id, load_catalog
from engine.cli import CommandParser, setup_logging
from engine.models.accel import accelerate_image
from engine.models.encoders import ImageEncoder, apply_num_threads
from engine.models.joint import DEFAULT_CHECKPOINT, ColourHead, JointModel, build_colour_head
from engine.settings import DEFAULT_SHARED_DATA
from engine.train.ensemble import merge_logit_heads
from engine.train.features import DEFAULT_CACHE_DIR, cached_image_inputs, cached_tar_image_inputs
from engine.train.joint_data import is_val_id

logger = logging.getLogger(__name__)


@dataclass
class ColourConfig:
    seed: int = 0
    epochs: int = 20
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    input_noise: float = 0.3
    label_smoothing: float = 0.1
    big_repeat: int = 3
    head_weight: float = 0.5  # photos' colour = w * colour head + (1 - w) * attribute head
    threads: int | None = 2
    members: int = 1  # heads trained with seeds seed, seed+1, ...; merged into one (logit mean)
    one_cycle: bool = False  # one-cycle learning rate (peak 3 x lr) instead of a constant one


def _split_rows(ids: list[str], keep: Callable[[str], bool]) -> np.ndarray:
    """Row indices of the ids ``keep`` accepts."""
    return np.asarray([i for i, pid in enumerate(ids) if keep(pid)], dtype=np.int64)


def train_head(
    model: JointModel,
    x: np.ndarray,
    y: np.ndarray,
    cfg: ColourConfig,
    attribute: str = "base_colour",
) -> ColourHead:
    """A head over photo inputs for ``attribute`` (labels ``y`` index its vocabulary); with
    ``cfg.members`` > 1, that many heads of different seeds merged by :func:`merge_heads`."""
    heads = [
        _train_one(model, x, y, cfg, attribute, cfg.seed + m) for m in range(max(1, cfg.members))
    ]
    return heads[0] if len(heads) == 1 else merge_heads(heads)


def merge_heads(heads: list[ColourHead]) -> ColourHead:
    """One head whose logits are the mean of ``heads``' logits (same inputs, same classes):
    an ordinary :class:`ColourHead` of ``sum(hidden)`` units
    (:func:`engine.train.ensemble.merge_logit_heads`)."""
    return merge_logit_heads(heads, lambda i, h, o: ColourHead(i, o, hidden=h))


def _train_one(
    model: JointModel,
    x: np.ndarray,
    y: np.ndarray,
    cfg: ColourConfig,
    attribute: str,
    seed: int,
) -> ColourHead:
    torch.manual_seed(seed)
    config = dict(model.config, colour_hidden=cfg.hidden, type_hidden=cfg.hidden)
    head = build_colour_head(config, model.attribute_vocab, attribute)
    mean = x.mean(axis=0)
    std = x.std(axis=0) + 1e-3
    head.mean.copy_(torch.from_numpy(mean))
    head.std.copy_(torch.from_numpy(std))
    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    noise = torch.from_numpy(std)
    total_steps = cfg.epochs * ((len(yt) + cfg.batch_size - 1) // cfg.batch_size)
    sched = (  # a warm-up needs a few steps: tiny runs keep the constant rate
        torch.optim.lr_scheduler.OneCycleLR(
            opt, max_lr=3 * cfg.lr, total_steps=total_steps, pct_start=0.1
        )
        if cfg.one_cycle and total_steps >= 20
        else None
    )
    for epoch in range(cfg.epochs):
        head.train()
        perm = torch.randperm(len(yt))
        total = 0.0
        for s in range(0, len(perm), cfg.batch_size):
            b = perm[s : s + cfg.batch_size]
            xb = xt[b] + cfg.input_noise * torch.randn(len(b), x.shape[1]) * noise
            loss = torch.nn.functional.cross_entropy(
                head(xb), yt[b], label_smoothing=cfg.label_smoothing
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            if sched is not None:
                sched.step()
            total += loss.item() * len(b)
        logger.info("%s head epoch %d: loss %.4f", attribute, epoch + 1, total / len(perm))
    return head.eval()


def colour_accuracy(
    model: JointModel, x: np.ndarray, products: list[Product], top: set[str]
) -> dict[str, float]:
    """Top-1 base colour of the photos whose colour is in ``top``: what the model predicts for
    photos (attribute head averaged with the colour head) vs the attribute head alone."""
    keep = [i for i, p in enumerate(products) if p.base_colour in top]
    vocab = model.attribute_vocab["base_colour"]
    truth = [products[i].base_colour for i in keep]
    emb = model.embed_image_features(x[keep])
    combined = model.image_attribute_probabilities(x[keep], emb)["base_colour"].argmax(axis=1)
    attr = model.attribute_probabilities(emb)["base_colour"]
    return {
        "n": float(len(keep)),
        "combined_top1": float(
            np.mean([vocab[j] == t for j, t in zip(combined, truth, strict=True)])
        ),
        "attribute_head_top1": float(
            np.mean([vocab[j] == t for j, t in zip(attr.argmax(axis=1), truth, strict=True)])
        ),
    }


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine.train colour", __doc__)
    cfg = ColourConfig()
    parser.add_argument("--seed", type=int, default=cfg.seed)
    parser.add_argument("--epochs", type=int, default=cfg.epochs)
    parser.add_argument("--big-repeat", type=int, default=cfg.big_repeat)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_SHARED_DATA / "catalog.jsonl.gz")
    parser.add_argument("--images", type=Path, default=DEFAULT_SHARED_DATA / "images")
    parser.add_argument(
        "--small-images",
        type=Path,
        default=DEFAULT_SHARED_DATA / "images_60x80.tar.gz",
        help="the 60x80 photos (images_60x80.tar.gz); 'none' to train on 224 px photos only",
    )
    parser.add_argument("--checkpoint", type=Path, default=DEFAULT_CHECKPOINT, help="joint.pt in")
    parser.add_argument("--out", type=Path, default=None, help="joint.pt out (default: in place)")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=cfg.threads)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    cfg = ColourConfig(
        seed=args.seed, epochs=args.epochs, big_repeat=args.big_repeat, threads=args.threads
    )
    apply_num_threads(cfg.threads)
    t0 = time.time()
    model = JointModel.load(args.checkpoint, "cpu")
    if "base_colour" not in model.attribute_vocab:
        raise SystemExit("this joint checkpoint has no base_colour attribute")
    vocab = model.attribute_vocab["base_colour"]
    index = {c: i for i, c in enumerate(vocab)}
    products = {p.id: p for p in load_catalog(args.catalog)}
    top = {
        c
        for c, _ in Counter(p.base_colour for p in products.values() if p.base_colour).most_common(
            12
        )
    }

    def factory() -> object:
        return accelerate_image(ImageEncoder("auto", num_threads=cfg.threads), threads=cfg.threads)

    big_ids, big_x = cached_image_inputs(
        list(products), args.images, factory, cache_dir=args.cache_dir
    )

    def train_item(pid: str) -> bool:
        p = products[pid]
        return not is_test_id(pid) and not is_val_id(pid) and p.base_colour in index

    def label(pid: str) -> int:
        return index[str(products[pid].base_colour)]  # train_item: the colour is in the vocab

    rows = _split_rows(big_ids, train_item)
    parts_x = [big_x[rows]] * cfg.big_repeat
    parts_y = [np.asarray([label(big_ids[i]) for i in rows])] * cfg.big_repeat
    n_small = 0
    if str(args.small_images).lower() != "none":
        train_ids = [pid for pid in products if train_item(pid)]
        small_ids, small_x = cached_tar_image_inputs(
            train_ids, args.small_images, factory, cache_dir=args.cache_dir, tag="tar224"
        )
        parts_x.append(small_x)
        parts_y.append(np.asarray([label(i) for i in small_ids]))
        n_small = len(small_ids)
    x = np.concatenate(parts_x).astype(np.float32)
    y = np.concatenate(parts_y).astype(np.int64)
    logger.info("colour head: %d training rows (%d small photos)", len(y), n_small)
    model.colour_head = train_head(model, x, y, cfg)
    model.config = dict(model.config, colour_hidden=cfg.hidden, colour_head_weight=cfg.head_weight)

    report: dict[str, object] = {
        "config": asdict(cfg),
        "train_rows": int(len(y)),
        "small_photos": n_small,
    }
    for name, keep in (("val", is_val_id), ("test", is_test_id)):
        rows = _split_rows(big_ids, keep)
        report[name] = colour_accuracy(
            model, big_x[rows], [products[big_ids[i]] for i in rows], top
        )
    out = model.save(args.out or args.checkpoint)
    report["checkpoint"] = str(out)
    report["seconds"] = time.time() - t0
    report_path = out.with_suffix(".colour.json")
    report_path.write_text(json.dumps(report, indent=2))
    logger.info("wrote %s and %s", out, report_path)
    print(json.dumps({k: report[k] for k in ("val", "test")}, indent=2))
    return 0
