"""Backbone input resolution, quality vs speed: ``python -m evaluation.bench_resolution``.

    python -m evaluation.bench_resolution --catalog product_data.csv --mapping mango \
        --images images/ --sizes 224 192 160

The image backbone (EfficientNet-Lite0) costs most of ingest's CPU and its cost grows with the
square of the input side. For each size this measures, on one catalog:

* **speed**: CPU milliseconds per image of the backbone alone and of the whole image input
  (decode, main-object crop, colour descriptor, backbone), batch 32, one thread (ONNX Runtime
  when it is available and equivalent, as ingest runs it), median of ``--repeats``; and the
  ceiling that sets on ``--cores`` cores;
* **quality, on the validation slice of the training split** (``is_val_id``; test items are
  never read): type and colour top-1 of a photo head trained on the training photos with the
  recipe of ``engine fit`` (:func:`engine.train.colour.train_head`), and image -> image
  precision@10 (same type and colour) on the standardised backbone features.

The image inputs of every photo are cached per size (``.cache/features/img<size>_...``; 224 is
the cache ``engine fit`` uses). The choice (:func:`choose_size`): the smallest size whose every
quality measure is within ``--tolerance`` points of the largest size's. Prints a table and the
choice; ``--out`` writes the JSON.
"""

from __future__ import annotations

import json
import logging
import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np

from engine.catalog import Product, is_test_id, load_catalog_mapping
from engine.catalog.product import local_image_files
from engine.catalog.readers import read_products
from engine.cli import CommandParser, setup_logging
from engine.models.accel import accelerate_image
from engine.models.encoders import IMAGE_FEATURE_DIM, ImageEncoder, apply_num_threads
from engine.models.features import crop_and_colour, image_inputs
from engine.models.images import load_image_file
from engine.train.colour import ColourConfig, train_head
from engine.train.features import DEFAULT_CACHE_DIR, cached_image_files
from engine.train.joint_data import build_vocab, encode_labels, is_val_id

logger = logging.getLogger(__name__)

QUALITY = ("type_top1", "colour_top1", "image_p_at_10")


def choose_size(rows: Sequence[Mapping[str, Any]], tolerance: float) -> int:
    """The smallest ``size`` whose every quality measure is within ``tolerance`` (absolute,
    e.g. 0.01 = one point) of the largest size's; measures a row lacks are not compared."""
    if not rows:
        raise ValueError("no sizes measured")
    ref = max(rows, key=lambda r: r["size"])
    ok = [
        r
        for r in rows
        if all(
            r.get(q) is None or ref.get(q) is None or r[q] >= ref[q] - tolerance for q in QUALITY
        )
    ]
    return int(min(r["size"] for r in ok))


def precision_at_10(x: np.ndarray, labels: Sequence[str]) -> float:
    """Share of each row's 10 nearest other rows (cosine) with the same label."""
    x = x / (np.linalg.norm(x, axis=1, keepdims=True) + 1e-12)
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    k = min(10, len(x) - 1)
    if k <= 0:
        return float("nan")
    nearest = np.argpartition(-sims, k, axis=1)[:, :k]
    lab = np.asarray(labels)
    return float((lab[nearest] == lab[:, None]).mean())


def _head_top1(
    x: np.ndarray, y: np.ndarray, train: np.ndarray, val: np.ndarray, n: int, cfg: ColourConfig
) -> float | None:
    tr, va = train & (y >= 0), val & (y >= 0)
    if tr.sum() == 0 or va.sum() == 0:
        return None
    shim = SimpleNamespace(config={"image_in": x.shape[1]}, attribute_vocab={"label": [""] * n})
    xs = np.concatenate([x[tr]] * cfg.big_repeat).astype(np.float32)
    ys = np.concatenate([y[tr]] * cfg.big_repeat).astype(np.int64)
    head = train_head(shim, xs, ys, cfg, "label")  # type: ignore[arg-type]
    import torch

    with torch.no_grad():
        pred = head(torch.from_numpy(x[va])).argmax(dim=1).numpy()
    return float((pred == y[va]).mean())


def _time_per_image(fn: Callable[[], Any], n: int, repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0 / n)
    return float(statistics.median(times))


def measure_size(
    size: int,
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    *,
    threads: int,
    repeats: int,
    cache_dir: Path,
    seed: int = 0,
) -> dict[str, Any]:
    """Speed and validation quality of the backbone at ``size`` px (see the module doc)."""

    def factory() -> object:
        return accelerate_image(
            ImageEncoder("cpu", num_threads=threads, image_size=size, batch_size=32),
            threads=threads,
        )

    # timed on one thread (CPU ms per image); the feature pass then uses ``threads``
    backbone = accelerate_image(
        ImageEncoder("cpu", num_threads=1, image_size=size, batch_size=32), threads=1
    )
    sample = [load_image_file(files[p.id]) for p in products[:32]]
    crops = [crop_and_colour(img)[0] for img in sample]
    backbone_ms = _time_per_image(lambda: backbone.features(crops), len(crops), repeats)  # type: ignore[attr-defined]

    def whole() -> None:
        imgs = [load_image_file(files[p.id]) for p in products[:32]]
        image_inputs(imgs, backbone)  # type: ignore[arg-type]

    inputs_ms = _time_per_image(whole, len(sample), repeats)
    tag = "img224" if size == 224 else f"img{size}"
    ids, feats = cached_image_files(files, images_dir, factory, cache_dir=cache_dir, tag=tag)
    by_id = {p.id: p for p in products}
    photo_products = [by_id[i] for i in ids]
    train_products = [p for p in photo_products if not is_test_id(p.id)]
    fields = {"article_type": "article_type", "base_colour": "base_colour"}
    vocab = build_vocab(train_products, fields)
    labels = encode_labels(photo_products, vocab, fields)
    is_train = np.asarray([not is_test_id(p.id) and not is_val_id(p.id) for p in photo_products])
    is_val = np.asarray([is_val_id(p.id) for p in photo_products])
    cfg = ColourConfig(seed=seed, threads=threads, one_cycle=True)
    out: dict[str, Any] = {
        "size": size,
        "backbone_ms_per_image": round(backbone_ms, 2),
        "image_inputs_ms_per_image": round(inputs_ms, 2),
        "runtime": type(backbone).__name__,
        "photos": len(ids),
        "val_photos": int(is_val.sum()),
    }
    for name, key in (("article_type", "type_top1"), ("base_colour", "colour_top1")):
        out[key] = (
            _head_top1(feats, labels[name], is_train, is_val, len(vocab[name]), cfg)
            if name in vocab
            else None
        )
    val_feats = feats[is_val][:, :IMAGE_FEATURE_DIM]
    train_feats = feats[is_train][:, :IMAGE_FEATURE_DIM]
    if len(val_feats) > 1 and len(train_feats):
        z = (val_feats - train_feats.mean(axis=0)) / (train_feats.std(axis=0) + 1e-3)
        val_products = [p for p, v in zip(photo_products, is_val, strict=True) if v]
        out["image_p_at_10"] = precision_at_10(
            z, [f"{p.article_type}|{p.base_colour}" for p in val_products]
        )
    else:
        out["image_p_at_10"] = None
    return out


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.4f}" if abs(v) < 1 else f"{v:.1f}"
    return str(v)


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_resolution", __doc__)
    parser.add_argument("--catalog", type=Path, required=True, help="JSONL(.gz), CSV or Parquet")
    parser.add_argument("--mapping", default=None, help="mapping file or preset (default ours)")
    parser.add_argument("--images", type=Path, required=True, help="folder with the photos")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 192, 160])
    parser.add_argument("--threads", type=int, default=2, help="threads of the feature pass")
    parser.add_argument("--cores", type=int, default=2, help="cores for the ceiling column")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tolerance", type=float, default=0.01, help="1 point = 0.01")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    setup_logging(args)
    if any(s < 32 or s > 1024 for s in args.sizes):
        parser.error("--sizes must be between 32 and 1024 px")
    apply_num_threads(args.threads)
    mapping = load_catalog_mapping(args.mapping)
    products, failed = read_products(args.catalog, mapping)
    files = local_image_files(products, args.images)
    products = [p for p in products if p.id in files]
    if not products:
        raise SystemExit(f"no product of {args.catalog} has a photo under {args.images}")
    rows = []
    for size in sorted(set(args.sizes), reverse=True):
        logger.info("size %d px", size)
        row = measure_size(
            size,
            products,
            files,
            args.images,
            threads=args.threads,
            repeats=args.repeats,
            cache_dir=args.cache_dir,
            seed=args.seed,
        )
        row["ceiling_images_per_s"] = round(
            1000.0 * args.cores / row["image_inputs_ms_per_image"], 1
        )
        rows.append(row)
        print(json.dumps(row), flush=True)
    chosen = choose_size(rows, args.tolerance)
    cols = (
        "size",
        "backbone_ms_per_image",
        "image_inputs_ms_per_image",
        "ceiling_images_per_s",
        *QUALITY,
    )
    print("| " + " | ".join(cols) + " |")
    print("|" + " --- |" * len(cols))
    for r in rows:
        print("| " + " | ".join(_fmt(r.get(c)) for c in cols) + " |")
    print(f"chosen on validation (tolerance {args.tolerance:.3f}): {chosen} px")
    report = {
        "catalog": str(args.catalog),
        "failed_rows": len(failed),
        "threads": args.threads,
        "timing_threads": 1,
        "cores": args.cores,
        "tolerance": args.tolerance,
        "rows": rows,
        "chosen": chosen,
    }
    if args.out is not None:
        args.out.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
