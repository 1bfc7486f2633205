"""``python -m engine.train static-text``: distil MiniLM into the static document text encoder.

Data: every catalog product's three text variants (``full`` = title + attributes + visual
description, ``title``, ``phrase``; see :data:`engine.train.joint.TEXT_VARIANTS`) with their MiniLM
sentence vectors from the shared feature cache (``.cache/features/text_minilm_v1.npz``, filled by
``python -m engine.train joint``; missing ones are computed, with a progress bar). Split by
product id (test items: sha1(id) % 5 == 0, never trained on). Loss: 1 - cosine to the teacher's
normalised vector; the row corrections carry a small L2 penalty so unseen-word behaviour stays
that of the derived base table.

Reported on the test split (``engine/models/weights/text_static.metrics.json``): cosine to the
teacher per variant, and in the joint space (through the shipped joint text tower) the student's
documents against the teacher's: title -> full-text recall@10 of the exact item, attribute
phrase -> full-text precision@10 (same type, colour and gender) and attribute-head accuracy.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from engine.catalog import Product, is_test_id, load_catalog
from engine.cli import CommandParser, setup_logging
from engine.models.checkpoints import save_checkpoint
from engine.models.encoders import TextEncoder, apply_num_threads
from engine.models.static_text import (
    DEFAULT_CACHE_DIR as TABLE_CACHE_DIR,
)
from engine.models.static_text import (
    DEFAULT_WEIGHTS,
    STATIC_TEXT_FORMAT,
    StaticTextEncoder,
    StaticTextNet,
    base_table,
    tokenize,
)
from engine.settings import DEFAULT_SHARED_DATA
from engine.train.features import DEFAULT_CACHE_DIR, cached_text_features
from engine.train.joint_data import TEXT_VARIANTS

logger = logging.getLogger(__name__)


@dataclass
class StaticTextConfig:
    seed: int = 0
    epochs: int = 8
    batch_size: int = 256
    lr: float = 2e-3
    hidden: int = 768
    delta_l2: float = 1e-3
    max_length: int = 128
    threads: int | None = 2


@dataclass
class TextData:
    texts: list[str]
    variant: list[str]
    product: list[int]  # index into products
    test: np.ndarray  # bool per text
    teacher: np.ndarray  # (N, 384)
    flat: np.ndarray
    offsets: np.ndarray
    lengths: np.ndarray


def collect_texts(products: list[Product]) -> tuple[list[str], list[str], list[int]]:
    """Distinct (text, variant, product index) over all products and variants."""
    texts: list[str] = []
    variants: list[str] = []
    owners: list[int] = []
    seen: set[str] = set()
    for i, p in enumerate(products):
        for name, fn in TEXT_VARIANTS.items():
            t = str(fn(p))
            if t and t not in seen:
                seen.add(t)
                texts.append(t)
                variants.append(name)
                owners.append(i)
    return texts, variants, owners


def prepare(
    products: list[Product], teacher: TextEncoder, cache_dir: Path, max_length: int
) -> TextData:
    texts, variants, owners = collect_texts(products)
    feats = cached_text_features(texts, lambda: teacher, cache_dir=cache_dir)
    flat, offsets = tokenize(teacher.tokenizer, texts, max_length)
    lengths = np.diff(np.append(offsets, len(flat)))
    test = np.array([is_test_id(products[o].id) for o in owners])
    return TextData(texts, variants, owners, test, feats, flat, offsets, lengths)


def _batch(data: TextData, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    ids = np.concatenate(
        [data.flat[data.offsets[i] : data.offsets[i] + data.lengths[i]] for i in idx]
    )
    offs = np.concatenate([[0], np.cumsum(data.lengths[idx])[:-1]])
    return torch.from_numpy(ids), torch.from_numpy(offs.astype(np.int64))


def _predict(net: StaticTextNet, data: TextData, idx: np.ndarray) -> np.ndarray:
    out = []
    with torch.no_grad():
        table = net.base + net.delta
        for s in range(0, len(idx), 4096):
            ids, offs = _batch(data, idx[s : s + 4096])
            out.append(net(ids, offs, table).numpy())
    return np.concatenate(out) if out else np.zeros((0, net.base.shape[1]), np.float32)


def train(
    data: TextData, base: np.ndarray, cfg: StaticTextConfig
) -> tuple[StaticTextNet, dict[str, Any]]:
    torch.manual_seed(cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    net = StaticTextNet(base, hidden=cfg.hidden)
    opt = torch.optim.Adam(net.parameters(), lr=cfg.lr)
    train_idx = np.flatnonzero(~data.test)
    test_idx = np.flatnonzero(data.test)
    history = []
    for epoch in range(cfg.epochs):
        net.train()
        perm = rng.permutation(train_idx)
        total = 0.0
        bar = tqdm(range(0, len(perm), cfg.batch_size), desc=f"epoch {epoch + 1}", unit="batch")
        for s in bar:
            idx = perm[s : s + cfg.batch_size]
            ids, offs = _batch(data, idx)
            out = net(ids, offs)
            target = torch.from_numpy(data.teacher[idx])
            loss = (1 - (out * target).sum(dim=1)).mean()
            loss = loss + cfg.delta_l2 * net.delta[ids].pow(2).sum(dim=1).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += loss.item() * len(idx)
        net.eval()
        cos = (_predict(net, data, test_idx) * data.teacher[test_idx]).sum(axis=1)
        history.append(
            {"epoch": epoch + 1, "train_loss": total / len(perm), "test_cosine": float(cos.mean())}
        )
        logger.info("epoch %d: %s", epoch + 1, history[-1])
    return net, {"history": history, "train_texts": len(train_idx), "test_texts": len(test_idx)}


def test_metrics(
    net: StaticTextNet, data: TextData, products: list[Product], tokenizer: Any
) -> dict[str, Any]:
    """Cosine to the teacher by variant, and joint-space retrieval with student documents."""
    from engine.models.joint import JointModel

    test_idx = np.flatnonzero(data.test)
    student = _predict(net, data, test_idx)
    cos = (student * data.teacher[test_idx]).sum(axis=1)
    variants = np.array(data.variant)[test_idx]
    out: dict[str, Any] = {
        "cosine": {
            v: {
                "mean": float(cos[variants == v].mean()),
                "p05": float(np.quantile(cos[variants == v], 0.05)),
            }
            for v in TEXT_VARIANTS
            if (variants == v).any()
        }
    }
    # every test product: title and phrase (teacher) as queries, its full text as the document
    row_of = {t: i for i, t in enumerate(data.texts)}
    prods = [
        p
        for p in products
        if is_test_id(p.id) and all(str(fn(p)) in row_of for fn in TEXT_VARIANTS.values())
    ]
    full_texts = [str(TEXT_VARIANTS["full"](p)) for p in prods]
    jm = JointModel.load(None, "cpu")

    def teacher(variant: str) -> np.ndarray:
        return data.teacher[[row_of[str(TEXT_VARIANTS[variant](p))] for p in prods]]

    q_title = jm.embed_text_features(teacher("title"))
    q_phrase = jm.embed_text_features(teacher("phrase"))
    flat, offsets = tokenize(tokenizer, full_texts, 128)
    with torch.no_grad():
        student_full = net(torch.from_numpy(flat), torch.from_numpy(offsets)).numpy()
    docs = {
        "teacher": jm.embed_text_features(teacher("full")),
        "student": jm.embed_text_features(student_full),
    }
    keys = [(p.article_type, p.base_colour, p.gender) for p in prods]
    n = len(prods)
    out["joint_products"] = n
    for name, d in docs.items():
        top_t = np.argpartition(-(q_title @ d.T), 10, axis=1)[:, :10]
        top_p = np.argpartition(-(q_phrase @ d.T), 10, axis=1)[:, :10]
        attrs = jm.predict_attributes(d, top_k=1)
        out[name] = {
            "title_to_full_recall_at_10": float(np.mean([i in top_t[i] for i in range(n)])),
            "phrase_to_full_p_at_10_type_colour_gender": float(
                np.mean([np.mean([keys[j] == keys[i] for j in top_p[i]]) for i in range(n)])
            ),
            "attribute_top1_article_type": float(
                np.mean(
                    [
                        next(iter(a["article_type"])) == p.article_type
                        for a, p in zip(attrs, prods, strict=True)
                    ]
                )
            ),
            "attribute_top1_base_colour": float(
                np.mean(
                    [
                        next(iter(a["base_colour"])) == p.base_colour
                        for a, p in zip(attrs, prods, strict=True)
                    ]
                )
            ),
        }
    out["joint_space_cosine_student_vs_teacher"] = float(
        (docs["teacher"] * docs["student"]).sum(axis=1).mean()
    )
    return out


def save(net: StaticTextNet, digest: str, cfg: StaticTextConfig, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {
        "format": STATIC_TEXT_FORMAT,
        "teacher_digest": digest,
        "hidden": cfg.hidden,
        "config": asdict(cfg),
        "weights": net.shipped_state(),
    }
    return save_checkpoint(state, path)


def _speed(encoder: StaticTextEncoder, texts: list[str]) -> float:
    encoder.encode(texts[:64])
    t0 = time.perf_counter()
    for s in range(0, len(texts), 32):  # ingest-sized batches
        encoder.encode(texts[s : s + 32])
    return (time.perf_counter() - t0) / max(1, len(texts)) * 1e3


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine.train static-text", __doc__)
    cfg = StaticTextConfig()
    parser.add_argument("--seed", type=int, default=cfg.seed)
    parser.add_argument("--epochs", type=int, default=cfg.epochs)
    parser.add_argument("--lr", type=float, default=cfg.lr)
    parser.add_argument("--catalog", type=Path, default=DEFAULT_SHARED_DATA / "catalog.jsonl.gz")
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR, help="feature caches")
    parser.add_argument("--table-cache", type=Path, default=TABLE_CACHE_DIR)
    parser.add_argument("--threads", type=int, default=cfg.threads)
    parser.add_argument("--limit", type=int, default=None, help="first N products (quick runs)")
    parser.add_argument("--out", type=Path, default=DEFAULT_WEIGHTS)
    parser.add_argument("--report", type=Path, default=None, help="default: <out>.metrics.json")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    cfg = StaticTextConfig(seed=args.seed, epochs=args.epochs, lr=args.lr, threads=args.threads)
    apply_num_threads(cfg.threads)
    t0 = time.time()
    products = load_catalog(args.catalog)[: args.limit]
    teacher = TextEncoder("cpu", batch_size=64, num_threads=cfg.threads)
    base, digest = base_table(teacher, args.table_cache)
    data = prepare(products, teacher, args.cache_dir, cfg.max_length)
    logger.info(
        "%d texts of %d products (%.0f s)", len(data.texts), len(products), time.time() - t0
    )
    net, report = train(data, base, cfg)
    report["config"] = asdict(cfg)
    report["test"] = test_metrics(net, data, products, teacher.tokenizer)
    out = save(net, digest, cfg, args.out)
    encoder = StaticTextEncoder.load(teacher, out, cache_dir=args.table_cache)
    sample = [data.texts[i] for i in np.flatnonzero(data.test)[:2048]]
    report["ms_per_text_batch32_student"] = _speed(encoder, sample)
    report["checkpoint"] = str(out)
    report["checkpoint_bytes"] = out.stat().st_size
    report["seconds"] = time.time() - t0
    report_path = args.report or out.with_suffix(".metrics.json")
    report_path.write_text(json.dumps(report, indent=2, default=float))
    logger.info("wrote %s (%d bytes) and %s", out, out.stat().st_size, report_path)
    print(json.dumps(report["test"], indent=2))
    return 0
