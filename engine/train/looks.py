"""Train the type-aware compatibility model: ``python -m engine.train.looks``.

Data: looks (a JSONL file, or the development looks mined from the catalog's style notes,
:mod:`engine.train.datagen.looks_mining`) split by their anchor
(:func:`engine.train.datagen.looks_mining.is_test_look`);
test looks are never trained on. A fixed slice of the training looks (sha1("val:"+look_id) % 10
== 0) is held out for model selection. Item vectors are the JointModel embeddings computed as
ingest computes them (:mod:`engine.train.looks_vectors`); training mixes the joint, image-only and
text-only vectors of an item so the model serves id queries (stored joint vectors) and photo
queries (image vectors) alike.

Loss: InfoNCE over (item, partner) pairs of every look, both directions, against
``--negatives`` random catalog items of the partner's slot (training split), for the pair
scorer and for the prototype head.

Outputs: the checkpoint (default ``engine/models/weights/compat.pt``) and a JSON report with
the validation curve and the held-out test metrics (FITB, compatibility AUC, partner
recall@10, the co-category popularity baseline).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from engine.catalog import Product, is_test_id, load_catalog
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.cli import CommandParser, setup_logging
from engine.looks.compat import (
    DEFAULT_CHECKPOINT,
    SLOT_INDEX,
    CompatModel,
    CompatNet,
    build_net,
    pair_indices,
)
from engine.looks.format import Look, load_looks, write_looks
from engine.looks.slots import look_slot
from engine.settings import DEFAULT_SHARED_DATA, PROJECT_ROOT
from engine.train.datagen.looks_mining import MiningStats, build_looks, split_looks
from engine.train.looks_benchmark import CoCategoryBaseline, run_benchmark, slot_pools
from engine.train.looks_scoring import calibrate, choose_look_rule, reference_items
from engine.train.looks_vectors import ItemVectors, compute_item_vectors

logger = logging.getLogger(__name__)

KINDS = ("joint", "image", "text")


def is_val_look(look_id: str) -> bool:
    return int(hashlib.sha1(f"val:{look_id}".encode()).hexdigest(), 16) % 10 == 0


@dataclass
class LooksTrainConfig:
    seed: int = 0
    epochs: int = 12
    batch_size: int = 256
    negatives: int = 128  # shared per partner slot in a batch
    lr: float = 2e-3
    weight_decay: float = 1e-4
    hidden: int = 512
    space: int = 128
    pair_dim: int = 64
    dropout: float = 0.2
    noise: float = 0.02
    proto_weight: float = 0.5
    proto_scale: float = 20.0
    kind_probs: tuple[float, float, float] = (0.5, 0.25, 0.25)  # joint, image, text
    num_threads: int = 1
    eval_limit: int | None = None


@dataclass
class TrainData:
    vectors: ItemVectors
    pairs: np.ndarray  # (P, 4): row_i, slot_i, row_j, slot_j
    neg_pools: dict[int, np.ndarray]  # slot index -> vector rows (training split)
    train_looks: list[Look]
    val_looks: list[Look]
    test_looks: list[Look]
    train_pools: dict[str, list[str]]
    test_pools: dict[str, list[str]]
    type_of: dict[str, str | None]


def measure_looks(
    model: CompatModel, data: TrainData, *, seed: int = 0, limit: int | None = None
) -> dict[str, float]:
    """FITB, compatibility AUC and partner recall on the held-out looks, with the co-category
    popularity baseline fitted on the training looks (raises ValueError without questions)."""
    baseline = CoCategoryBaseline(data.type_of).fit(data.train_looks)
    return run_benchmark(
        model,
        data.vectors,
        data.test_looks,
        data.test_pools,
        baseline=baseline,
        type_of=data.type_of,
        seed=seed,
        limit=limit,
    )


def look_pairs(looks: list[Look], vectors: ItemVectors) -> np.ndarray:
    rows: list[tuple[int, int, int, int]] = []
    for look in looks:
        items = [(it.item_id, it.slot) for it in look.items if it.slot and it.item_id in vectors]
        for a, sa in items:
            for b, sb in items:
                if a != b:
                    rows.append((vectors.row[a], SLOT_INDEX[sa], vectors.row[b], SLOT_INDEX[sb]))
    return np.asarray(rows, dtype=np.int64).reshape(-1, 4)


def prepare(
    products: list[Product],
    looks: list[Look],
    vectors: ItemVectors,
    *,
    split_by_look_id: bool = False,
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
) -> TrainData:
    """Training data. Looks are held out by their anchor item's split (mined looks: an anchor
    and its partners are one product page) or, with ``split_by_look_id``, by the look's own id
    (curated looks: a held-out look is never trained on, its items may be in other looks);
    then FITB candidates come from every catalog item of the slot."""
    type_of = {p.id: p.article_type for p in products}
    slot_items = [(p.id, taxonomy.look_slot(p)) for p in products]

    def known(i: str) -> bool:
        return i in vectors

    if split_by_look_id:
        train_all = [lk for lk in looks if not is_test_id(lk.look_id)]
        test_looks = [lk for lk in looks if is_test_id(lk.look_id)]
    else:
        train_all, test_looks = split_looks(looks)
    train_looks = [lk for lk in train_all if not is_val_look(lk.look_id)]
    val_looks = [lk for lk in train_all if is_val_look(lk.look_id)]
    train_pools = slot_pools([(i, s) for i, s in slot_items if not is_test_id(i)], known)
    if split_by_look_id:
        test_pools = slot_pools(slot_items, known)
    else:
        test_pools = slot_pools([(i, s) for i, s in slot_items if is_test_id(i)], known)
    neg_pools = {
        SLOT_INDEX[s]: vectors.rows(ids) for s, ids in train_pools.items() if s in SLOT_INDEX
    }
    pairs = look_pairs(train_looks, vectors)
    logger.info(
        "looks: %d train, %d val, %d test; %d training pairs",
        len(train_looks),
        len(val_looks),
        len(test_looks),
        len(pairs),
    )
    return TrainData(
        vectors,
        pairs,
        neg_pools,
        train_looks,
        val_looks,
        test_looks,
        train_pools,
        test_pools,
        type_of,
    )


def _step_loss(
    net: CompatNet,
    batch: np.ndarray,
    data: TrainData,
    cfg: LooksTrainConfig,
    pick: Callable[[np.ndarray], torch.Tensor],
    joint: torch.Tensor,
    rng: np.random.Generator,
) -> torch.Tensor:
    """InfoNCE of one batch of (item, partner) pairs. Negatives are shared: ``cfg.negatives``
    random training items per partner slot, embedded once and projected once per slot pair."""
    ri, si, rj, sj = batch.T
    tsi, tsj = torch.from_numpy(si), torch.from_numpy(sj)
    pair = pair_indices(tsi, tsj)
    x = pick(ri)
    zx = net.project(net.general_embed(x, tsi), pair)
    zy = net.project(net.general_embed(pick(rj), tsj), pair)
    pos = (zx * zy).sum(-1)
    scale = net.logit_scale.exp().clamp(max=50.0)
    q = net.prototype(x, tsi, tsj) if cfg.proto_weight > 0 else None
    losses: list[torch.Tensor] = []
    for s in np.unique(sj):
        pool = data.neg_pools[int(s)]
        neg_rows = pool[rng.integers(0, len(pool), size=cfg.negatives)]
        slot_t = torch.full((len(neg_rows),), int(s), dtype=torch.long)
        gn = net.general_embed(pick(neg_rows), slot_t)
        in_slot = torch.from_numpy(np.flatnonzero(sj == s))
        for p in torch.unique(pair[in_slot]):
            rows = in_slot[pair[in_slot] == p]
            zn = nn.functional.normalize(gn @ net.pair_proj[p], dim=-1)
            logits = torch.cat([pos[rows, None], zx[rows] @ zn.T], dim=1) * scale
            target = torch.zeros(len(rows), dtype=torch.long)
            losses.append(nn.functional.cross_entropy(logits, target, reduction="sum"))
        if q is not None:
            rows = in_slot
            yj = joint[torch.from_numpy(rj[rows.numpy()])]
            nj = joint[torch.from_numpy(neg_rows)]
            plog = torch.cat([(q[rows] * yj).sum(-1, keepdim=True), q[rows] @ nj.T], dim=1)
            target = torch.zeros(len(rows), dtype=torch.long)
            losses.append(
                cfg.proto_weight
                * nn.functional.cross_entropy(plog * cfg.proto_scale, target, reduction="sum")
            )
    return torch.stack(losses).sum() / len(batch)


def train(data: TrainData, cfg: LooksTrainConfig) -> tuple[CompatModel, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    if cfg.num_threads:
        torch.set_num_threads(cfg.num_threads)
    v = data.vectors
    mats = {
        "joint": torch.from_numpy(v.joint),
        "image": torch.from_numpy(np.where(v.has_image[:, None], v.image, v.text)),
        "text": torch.from_numpy(v.text),
    }
    config = {
        "dim": int(v.joint.shape[1]),
        "hidden": cfg.hidden,
        "space": cfg.space,
        "pair_dim": cfg.pair_dim,
        "dropout": cfg.dropout,
    }
    net = build_net(config)
    opt = torch.optim.AdamW(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, int(np.ceil(len(data.pairs) / cfg.batch_size)))
    sched = torch.optim.lr_scheduler.OneCycleLR(
        opt, max_lr=cfg.lr, total_steps=cfg.epochs * steps_per_epoch, pct_start=0.1
    )
    kind_p = np.asarray(cfg.kind_probs, dtype=np.float64)
    kind_p = kind_p / kind_p.sum()
    history: list[dict[str, float]] = []
    references = reference_items(data, seed=cfg.seed)
    best: tuple[float, dict[str, torch.Tensor], int, list[list[float]]] | None = None

    def pick(rows: np.ndarray) -> torch.Tensor:
        choice = rng.choice(len(KINDS), size=len(rows), p=kind_p)
        out = torch.empty((len(rows), mats["joint"].shape[1]), dtype=torch.float32)
        for k, name in enumerate(KINDS):
            m = choice == k
            if m.any():
                out[torch.from_numpy(m)] = mats[name][torch.from_numpy(rows[m])]
        if cfg.noise > 0:
            out = nn.functional.normalize(out + cfg.noise * torch.randn_like(out), dim=-1)
        return out

    for epoch in range(cfg.epochs):
        net.train()
        order = rng.permutation(len(data.pairs))
        total = 0.0
        bar = tqdm(
            range(steps_per_epoch), desc=f"looks epoch {epoch + 1}", leave=False, disable=None
        )
        for step in bar:
            batch = data.pairs[order[step * cfg.batch_size : (step + 1) * cfg.batch_size]]
            if len(batch) == 0:
                continue
            loss = _step_loss(net, batch, data, cfg, pick, mats["joint"], rng)
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach())
            bar.set_postfix(loss=f"{float(loss.detach()):.3f}")
        model = CompatModel(net.eval(), config)
        model.config["calibration"] = calibrate(model, data, seed=cfg.seed)
        model.set_references(references)
        val = run_benchmark(
            model,
            data.vectors,
            data.val_looks,
            data.train_pools,
            seed=cfg.seed,
            limit=cfg.eval_limit,
        )
        net.train()
        row = {"epoch": epoch + 1, "loss": total / steps_per_epoch, **val}
        history.append(row)
        logger.info(
            "epoch %d: loss %.4f val FITB %.4f AUC %.4f",
            epoch + 1,
            row["loss"],
            val["fitb_accuracy"],
            val.get("compatibility_auc", float("nan")),
        )
        key = val["fitb_accuracy"] + val.get("compatibility_auc", 0.0)
        if best is None or key > best[0]:
            state = {k: t.detach().clone() for k, t in net.state_dict().items()}
            best = (key, state, epoch + 1, model.config["calibration"])
    assert best is not None
    net.load_state_dict(best[1])
    model = CompatModel(net.eval(), {**config, "trained_epochs": best[2], "calibration": best[3]})
    model.set_references(references)
    rules = choose_look_rule(model, data, seed=cfg.seed)
    return model, {"history": history, "best_epoch": best[2], "look_rules_val_auc": rules}


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine.train.looks", __doc__)
    shared = DEFAULT_SHARED_DATA
    parser.add_argument("--catalog", type=Path, default=shared / "catalog.jsonl.gz")
    parser.add_argument("--images", type=Path, default=shared / "images")
    parser.add_argument("--looks", type=Path, default=None, help="looks JSONL (default: mine)")
    parser.add_argument(
        "--write-looks", type=Path, default=None, help="also write the mined looks here"
    )
    parser.add_argument("--joint-checkpoint", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=DEFAULT_CHECKPOINT)
    parser.add_argument(
        "--report", type=Path, default=PROJECT_ROOT / "reports" / "looks_train.json"
    )
    parser.add_argument("--cache-dir", type=Path, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=LooksTrainConfig.epochs)
    parser.add_argument("--batch-size", type=int, default=LooksTrainConfig.batch_size)
    parser.add_argument("--negatives", type=int, default=LooksTrainConfig.negatives)
    parser.add_argument("--lr", type=float, default=LooksTrainConfig.lr)
    parser.add_argument(
        "--num-threads", type=int, default=1, help="torch threads (1 is fastest on a busy CPU)"
    )
    parser.add_argument("--max-items", type=int, default=None, help="first N catalog rows only")
    parser.add_argument("--eval-limit", type=int, default=None, help="cap val/test questions")
    parser.add_argument("--device", default="cpu", help="device of the joint model")
    parser.add_argument(
        "--references-only",
        action="store_true",
        help="do not train: store reference items in the checkpoint at --out, re-measure it",
    )
    parser.add_argument(
        "--text-encoder",
        choices=("static", "minilm"),
        default="static",
        help="documents' text encoder, as ingest runs it (default static)",
    )
    return parser


def _store_references(args: argparse.Namespace, data: TrainData) -> int:
    """Add reference items to an existing checkpoint (weights unchanged) and re-measure it;
    the report at ``--report`` keeps its training history and gets the new test metrics."""
    model = CompatModel.load(args.out)
    before = measure_looks(model, data, seed=args.seed, limit=args.eval_limit)
    model.set_references(reference_items(data, seed=args.seed))
    rules = choose_look_rule(model, data, seed=args.seed)
    test = measure_looks(model, data, seed=args.seed, limit=args.eval_limit)
    path = model.save(args.out)
    report = json.loads(args.report.read_text()) if args.report.is_file() else {}
    report.update(
        test=test,
        test_without_references=before,
        look_rules_val_auc=rules,
        look_rule=model.config.get("look_rule"),
        checkpoint=str(path),
        checkpoint_bytes=path.stat().st_size,
    )
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({"test": test, "test_without_references": before}, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging(args)
    start = time.time()
    random.seed(args.seed)
    cfg = LooksTrainConfig(
        seed=args.seed,
        epochs=args.epochs,
        batch_size=args.batch_size,
        negatives=args.negatives,
        lr=args.lr,
        num_threads=args.num_threads,
        eval_limit=args.eval_limit,
    )
    torch.set_num_threads(args.num_threads)
    products = load_catalog(args.catalog)
    if args.max_items:
        products = products[: args.max_items]
    mining: dict[str, int] | None = None
    if args.looks is not None:
        looks = load_looks(args.looks)
    else:
        stats = MiningStats()
        looks = build_looks(products, seed=args.seed, stats=stats)
        mining = stats.as_dict()
        if args.write_looks is not None:
            write_looks(looks, args.write_looks)
    from engine.models.joint import JointModel

    joint = JointModel.load(args.joint_checkpoint, device=args.device, num_threads=args.num_threads)
    eligible = [p for p in products if look_slot(p) is not None]
    from engine.models.static_text import document_model_version, document_text_encoder

    document_text = document_text_encoder(args.text_encoder, joint.text_encoder)
    vectors = compute_item_vectors(
        eligible, joint, args.images, cache_dir=args.cache_dir, document_text=document_text
    )
    data = prepare(eligible, looks, vectors)
    if len(data.pairs) == 0:
        logger.error("no training pairs: are there looks over this catalog?")
        return 1
    if args.references_only:
        return _store_references(args, data)
    model, info = train(data, cfg)
    test = measure_looks(model, data, seed=args.seed, limit=args.eval_limit)
    # the model_version ingest stamps on product documents (joint heads + document text encoder)
    version = document_model_version(args.joint_checkpoint, args.text_encoder)
    model.config["joint_model_version"] = version
    path = model.save(args.out)
    report = {
        "config": asdict(cfg),
        "catalog": str(args.catalog),
        "looks": str(args.looks) if args.looks else "mined from style notes",
        "mining": mining,
        "counts": {
            "products": len(products),
            "look_eligible": len(eligible),
            "with_photo": int(vectors.has_image.sum()),
            "train_looks": len(data.train_looks),
            "val_looks": len(data.val_looks),
            "test_looks": len(data.test_looks),
            "train_pairs": int(len(data.pairs)),
        },
        "best_epoch": info["best_epoch"],
        "history": info["history"],
        "test": test,
        "checkpoint": str(path),
        "checkpoint_bytes": path.stat().st_size,
        "seconds": round(time.time() - start, 1),
    }
    args.report.parent.mkdir(parents=True, exist_ok=True)
    args.report.write_text(json.dumps(report, indent=2))
    print(json.dumps({"test": test, "best_epoch": info["best_epoch"]}, indent=2))
    logger.info("wrote %s and %s", path, args.report)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
