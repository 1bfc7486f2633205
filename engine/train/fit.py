"""``python -m engine fit``: fit every learned part to one retailer's catalog, into a bundle.

    python -m engine fit --catalog product_data.csv --mapping mango --images images/ \
        --looks outfit_data.csv --out bundles/mango

On that catalog alone (fixed seed; products split by :func:`engine.catalog.is_test_id`, looks by
their own id), it fits:

1. the **joint image-text space** (:mod:`engine.train.joint`) with an **attribute head over the
   label spaces the catalog has**: type, colour (group), gender, category levels and every
   attribute column of the mapping; a field the catalog leaves empty, or with fewer than two
   values seen 5 times, is skipped with a note, never a crash. Its ``article_type`` part is the
   category classifier the search fuses with a k-NN vote;
2. the **colour head** over photo inputs (:mod:`engine.train.colour`), when there is a colour;
3. the **compatibility model** on the catalog's looks (:mod:`engine.train.looks`; ``--looks``
   takes the JSONL look format or a relational CSV ``outfit_id,item_id``), held-out looks never
   trained on; without looks it says so and complete the look stays look-free;
4. the **shopper-photo model** (:mod:`engine.train.shopper`: objectness head, the backbone's
   last stages for object crops, query tower, type head) on synthetic shopper photos made from
   the catalog's own packshots, last, with the time the others leave (the compatibility model
   leaves it its run, or 45% of what is left; ``--no-shopper``: skipped, and photo uploads that
   are not studio shots are then read as studio shots).

Writes the bundle (:mod:`engine.bundle`): ``joint.pt``, ``shopper.pt``, ``compat.pt``, ``manifest.json`` (what
was fitted, label spaces, catalog digest, metrics, versions) and ``fit.json``. Metrics are on
the test split: text->image recall@10, image->image precision@10 (same type and colour), type
and colour top-1, category fusion vs k-NN vote alone, FITB and compatibility AUC.
``--minutes`` bounds the training steps (the feature pass is cached and resumable).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import platform
import resource
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from engine.bundle import Manifest, write_manifest
from engine.catalog import CatalogMapping, Product, is_test_id, load_catalog_mapping
from engine.catalog.product import local_image_files
from engine.catalog.readers import read_products
from engine.catalog.taxonomy import Taxonomy
from engine.cli import CommandParser, setup_logging
from engine.files import file_sha1
from engine.models.encoders import apply_num_threads
from engine.models.joint import JointModel
from engine.train.category_eval import category_metrics
from engine.train.features import DEFAULT_CACHE_DIR
from engine.train.fit_shopper import fit_shopper_part, shopper_seconds
from engine.train.label_spaces import attribute_fields
from engine.train.shopper_budget import ShopperConfig

logger = logging.getLogger(__name__)


@dataclass
class FitConfig:
    seed: int = 0
    minutes: float | None = 30.0
    joint_epochs: int = 25
    colour_epochs: int = 20
    head_members: int = 3  # photo heads refitted as this many seeds, merged (logit mean)
    looks_epochs: int = 16  # cut to what fits the --minutes budget
    threads: int = 2
    cache_dir: Path = DEFAULT_CACHE_DIR
    text_encoder: str = "static"  # documents' text encoder, as ingest runs it
    shopper: bool = True  # fit the shopper-photo model too
    # its training run (seed, threads and cache folder are this config's); with a time budget
    # its photos are cut to the time the other parts leave (engine.train.fit_shopper)
    shopper_config: ShopperConfig = field(default_factory=ShopperConfig)
    extra: dict[str, Any] = field(default_factory=dict)


def catalog_digest(path: Path, products: list[Product]) -> dict[str, Any]:
    """Identity of the catalog a bundle was fitted to (file bytes and the product ids)."""
    ids = hashlib.sha1("\n".join(sorted(p.id for p in products)).encode()).hexdigest()
    return {"file": Path(path).name, "sha1": file_sha1(path), "ids_sha1": ids}


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


LOOKS_SECONDS_PER_PAIR = 4e-4  # compatibility training cost per pair and epoch (2-core CPU)
HEAD_WEIGHTS = (0.3, 0.5, 0.7, 0.85, 1.0)
CATEGORY_ALPHAS = (0.3, 0.5, 0.7, 0.85, 1.0)  # classifier weight in the category fusion


def _choose_head_weight(
    model: JointModel, data: Any, val_rows: np.ndarray, attribute: str, key: str
) -> float:
    """The mix weight of a photo head with the best validation top-1 (0.5 without data)."""
    labels = data.labels[attribute][data.image_rows[val_rows]]
    keep = val_rows[labels >= 0]
    best, best_acc = 0.5, -1.0
    if len(keep) == 0:
        model.config[key] = best
        return best
    truth = data.labels[attribute][data.image_rows[keep]]
    for w in HEAD_WEIGHTS:
        model.config[key] = w
        probs = model.image_attribute_probabilities(data.image[keep])[attribute]
        acc = float((probs.argmax(axis=1) == truth).mean())
        if acc > best_acc + 1e-9:
            best, best_acc = w, acc
    model.config[key] = best
    logger.info("%s: photo head weight %.2f (validation top-1 %.4f)", attribute, best, best_acc)
    return best


def _labelled(data: Any, rows: np.ndarray, attribute: str) -> list[int]:
    """The photo rows among ``rows`` whose item has a label for ``attribute``."""
    if attribute not in data.vocab:
        return []
    labels = data.labels[attribute]
    return [int(r) for r in rows if labels[data.image_rows[r]] >= 0]


def _fit_photo_head(
    model: JointModel,
    data: Any,
    rows: list[int],
    attribute: str,
    key: str,
    cfg: FitConfig,
    members: int = 1,
) -> None:
    """Train the ``attribute`` head over photo inputs of ``rows`` and put it on ``model``
    (``members`` seeds merged into one head; one-cycle learning rate)."""
    from engine.train.colour import ColourConfig, train_head

    labels = data.labels[attribute]
    ccfg = ColourConfig(
        seed=cfg.seed,
        epochs=cfg.colour_epochs,
        threads=cfg.threads,
        members=members,
        one_cycle=True,
    )
    x = np.concatenate([data.image[rows]] * ccfg.big_repeat).astype(np.float32)
    y = np.concatenate([labels[data.image_rows[rows]]] * ccfg.big_repeat).astype(np.int64)
    head = train_head(model, x, y, ccfg, attribute)
    setattr(model, f"{key}_head", head)
    model.config = dict(model.config, **{f"{key}_hidden": head.net[0].out_features})


def fit_joint(
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    fields: dict[str, str],
    cfg: FitConfig,
    deadline: float | None,
) -> tuple[JointModel, dict[str, Any], Any]:
    from engine.train.joint import TrainConfig, is_val_id, prepare_products, test_metrics, train

    tcfg = TrainConfig(seed=cfg.seed, epochs=cfg.joint_epochs, num_threads=cfg.threads)
    data = prepare_products(
        products, files, images_dir, cfg=tcfg, fields=fields, cache_dir=cfg.cache_dir
    )
    if len(data.image_rows) == 0:
        raise SystemExit("no product photo could be read: check --images and the mapping")
    if deadline is not None:
        tcfg.max_seconds = max(30.0, 0.6 * (deadline - time.time()))
    model, report = train(data, tcfg)
    # heads over photo inputs for the colour and the type label spaces the catalog has; each
    # photo's distribution mixes a head with the attribute head, the weight chosen on the
    # validation slice of the training split (never on test items)
    photo = np.flatnonzero(data.image_source == 0)
    pids = [data.products[data.image_rows[r]].id for r in photo]
    train_rows = photo[[not is_test_id(i) and not is_val_id(i) for i in pids]]
    val_rows = photo[[is_val_id(i) for i in pids]]
    heads: list[tuple[str, str]] = []
    for attribute, key in (("base_colour", "colour"), ("article_type", "type")):
        rows = _labelled(data, train_rows, attribute)
        if not rows:
            continue
        _fit_photo_head(model, data, rows, attribute, key, cfg)
        weight = _choose_head_weight(model, data, val_rows, attribute, f"{key}_head_weight")
        report[f"{key}_head"] = {"train_rows": len(rows), "weight": weight}
        heads.append((attribute, key))
    photo_rows = np.flatnonzero(data.image_source == 0)
    photo_products = [data.products[data.image_rows[r]] for r in photo_rows]
    # the category fusion weight (classifier vs k-NN vote), chosen on validation photos against
    # the training photos; stored in the bundle and used by the search service
    train_val = [i for i, p in enumerate(photo_products) if not is_test_id(p.id)]
    tv_products = [photo_products[i] for i in train_val]
    tv_train = np.asarray([not is_val_id(p.id) for p in tv_products])
    tv_feats = data.image[photo_rows[train_val]]
    best_alpha, best_acc = 0.5, -1.0
    for alpha in CATEGORY_ALPHAS:
        val = category_metrics(model, tv_feats, tv_products, tv_train, alpha=alpha)
        acc = val.get("category_top1_fusion", 0.0)
        if acc > best_acc + 1e-9:
            best_alpha, best_acc = alpha, acc
    model.config["category_alpha"] = best_alpha
    logger.info("category fusion weight %.2f (validation top-1 %.4f)", best_alpha, best_acc)
    report["category_alpha"] = best_alpha
    # with the weights chosen, the photo heads are refitted on training + validation photos
    # (more labelled photos, the rare types above all), as an ensemble of ``head_members``
    # seeds merged into one head (Mango validation photos, type top-1 of a head trained on the
    # training photos: one head 0.808 at a constant rate, 0.811 one-cycle, three merged 0.820);
    # test photos are never used
    for attribute, key in heads:
        rows = _labelled(data, np.concatenate([train_rows, val_rows]), attribute)
        _fit_photo_head(model, data, rows, attribute, key, cfg, members=cfg.head_members)
        report[f"{key}_head"].update(refit_rows=len(rows), members=cfg.head_members)
    report["test"] = test_metrics(model, data)
    is_train = np.asarray([not is_test_id(p.id) for p in photo_products])
    report["test"].update(
        category_metrics(model, data.image[photo_rows], photo_products, is_train, alpha=best_alpha)
    )
    return model, report, data


def fit_looks(
    products: list[Product],
    files: dict[str, Path],
    images_dir: Path,
    looks_path: Path,
    joint_path: Path,
    taxonomy: Taxonomy,
    cfg: FitConfig,
    out: Path,
    deadline: float | None = None,
) -> dict[str, Any]:
    from engine.models.static_text import document_model_version, document_text_encoder
    from engine.train.curated_looks import curated_look_data
    from engine.train.looks import LooksTrainConfig, measure_looks, train

    joint = JointModel.load(joint_path, device="cpu", num_threads=cfg.threads)
    data, counts = curated_look_data(
        products,
        looks_path,
        joint,
        images_dir,
        taxonomy=taxonomy,
        document_text=document_text_encoder(cfg.text_encoder, joint.text_encoder),
        image_files=files,
        cache_dir=cfg.cache_dir,
    )
    logger.info("looks: %s", counts)
    if len(data.pairs) == 0:
        return {"fitted": False, "note": "no training pairs from these looks"}
    epochs = cfg.looks_epochs
    if deadline is not None:
        # one epoch costs ~0.4 ms of CPU per training pair (measured: 147k pairs, 55 s, 2 cores)
        per_epoch = LOOKS_SECONDS_PER_PAIR * len(data.pairs) + 3.0
        fits = int(max(0.0, deadline - time.time() - 60.0) // per_epoch)
        if fits < epochs:
            epochs = max(2, fits)
            logger.warning(
                "compatibility model: %d epochs instead of %d to stay in the time budget",
                epochs,
                cfg.looks_epochs,
            )
    lcfg = LooksTrainConfig(seed=cfg.seed, epochs=epochs, num_threads=1)
    model, info = train(data, lcfg)
    try:
        test = measure_looks(model, data, seed=cfg.seed)
    except ValueError as exc:  # too few held-out looks to ask a single question
        logger.warning("compatibility model not measured: %s", exc)
        test = {}
    model.config["joint_model_version"] = document_model_version(joint_path, cfg.text_encoder)
    path = model.save(out / "compat.pt")
    return {
        "fitted": True,
        "file": path.name,
        **counts,
        "train_looks": len(data.train_looks),
        "val_looks": len(data.val_looks),
        "test_looks": len(data.test_looks),
        "train_pairs": int(len(data.pairs)),
        "epochs": epochs,
        "best_epoch": info["best_epoch"],
        "look_rule": model.config.get("look_rule"),
        "look_rules_val_auc": info.get("look_rules_val_auc", {}),
        "test": test,
    }


def fit(
    catalog: Path,
    *,
    mapping: CatalogMapping,
    images_dir: Path,
    out: Path,
    looks: Path | None = None,
    cfg: FitConfig | None = None,
) -> dict[str, Any]:
    """Fit every part to ``catalog`` and write the bundle to ``out``; returns the report."""
    cfg = cfg or FitConfig()
    t0 = time.time()
    deadline = None if cfg.minutes is None else t0 + 60.0 * cfg.minutes
    apply_num_threads(cfg.threads)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    seconds: dict[str, float] = {}

    products, failed = read_products(catalog, mapping)
    if not products:
        raise SystemExit(f"no valid product in {catalog} ({len(failed)} rows failed)")
    taxonomy = mapping.build_taxonomy()
    slots = taxonomy.report(products)
    logger.info(
        "catalog: %d products, %d rows failed; %s", len(products), len(failed), slots.summary()
    )
    files = local_image_files(products, images_dir)
    fields, notes = attribute_fields(products, mapping)
    for note in notes:
        logger.info("label spaces: %s", note)
    seconds["read"] = time.time() - t0

    t = time.time()
    model, joint_report, data = fit_joint(products, files, images_dir, fields, cfg, deadline)
    joint_path = model.save(out / "joint.pt")
    seconds["joint"] = time.time() - t

    # the compatibility model's share of the time left leaves the shopper-photo model its run
    # (or, when both do not fit, 45% of what is left)
    looks_deadline = deadline
    if deadline is not None and cfg.shopper:
        left = deadline - time.time()
        looks_deadline = deadline - min(shopper_seconds(cfg.shopper_config), 0.45 * left)
    t = time.time()
    if looks is not None:
        looks_report = fit_looks(
            products, files, images_dir, looks, joint_path, taxonomy, cfg, out, looks_deadline
        )
    else:
        looks_report = {"fitted": False, "note": "no --looks: complete the look stays look-free"}
        notes.append("compatibility model not fitted (no looks given): look-free complete the look")
    seconds["looks"] = time.time() - t

    t = time.time()  # last: it takes the time the other parts leave
    shopper_report = fit_shopper_part(products, files, images_dir, joint_path, cfg, out, deadline)
    if not shopper_report["fitted"]:
        notes.append(f"shopper-photo model not fitted: {shopper_report['note']}")
    seconds["shopper"] = time.time() - t
    seconds["total"] = time.time() - t0

    test = dict(joint_report.get("test", {}))
    if looks_report.get("fitted"):
        test.update({f"looks_{k}": v for k, v in looks_report["test"].items()})
    report = {
        "catalog": str(catalog),
        "mapping": mapping.summary(),
        "products": len(products),
        "failed_rows": len(failed),
        "with_photo": len(files),
        "slots": slots.as_dict(),
        "attribute_fields": {k: v for k, v in fields.items() if k in model.attribute_vocab},
        "notes": notes,
        "joint": {k: v for k, v in joint_report.items() if k != "history"},
        "joint_history": joint_report.get("history"),
        "shopper": shopper_report,
        "looks": looks_report,
        "test": test,
        "seconds": seconds,
        "peak_rss_mb": round(_peak_rss_mb(), 1),
        "config": json.loads(json.dumps(asdict(cfg), default=str)),
    }
    (out / "fit.json").write_text(json.dumps(report, indent=2, default=float))
    import torch

    parts: dict[str, Any] = {"joint": {"file": "joint.pt", "sha1": file_sha1(joint_path)}}
    if shopper_report.get("fitted"):
        parts["shopper"] = {"file": "shopper.pt", "sha1": file_sha1(out / "shopper.pt")}
    if looks_report.get("fitted"):
        parts["compat"] = {"file": "compat.pt", "sha1": file_sha1(out / "compat.pt")}
    manifest = Manifest(
        name=mapping.name or Path(catalog).stem,
        created=datetime.now(UTC).isoformat(timespec="seconds"),
        catalog={
            **catalog_digest(catalog, products),
            "products": len(products),
            "with_photo": len(files),
        },
        label_spaces=model.attribute_vocab,
        attribute_fields=report["attribute_fields"],
        parts=parts,
        metrics=test,
        notes=notes,
        versions={
            "python": platform.python_version(),
            "torch": torch.__version__,
            "document_text_encoder": cfg.text_encoder,
        },
    )
    write_manifest(out, manifest)
    return report


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine fit", __doc__)
    parser.add_argument("--catalog", type=Path, required=True, help="JSONL(.gz), CSV or Parquet")
    parser.add_argument(
        "--mapping", default=None, help="mapping file or preset (mango, myntra); default: ours"
    )
    parser.add_argument("--images", type=Path, required=True, help="folder with the photos")
    parser.add_argument("--looks", type=Path, default=None, help="looks: JSONL or CSV table")
    parser.add_argument("--out", type=Path, required=True, help="bundle directory to write")
    parser.add_argument("--minutes", type=float, default=FitConfig.minutes, help="time budget")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--joint-epochs", type=int, default=FitConfig.joint_epochs)
    parser.add_argument("--looks-epochs", type=int, default=FitConfig.looks_epochs)
    parser.add_argument("--threads", type=int, default=FitConfig.threads)
    parser.add_argument("--cache-dir", type=Path, default=DEFAULT_CACHE_DIR)
    parser.add_argument("--no-shopper", action="store_true", help="skip the shopper-photo model")
    parser.add_argument(
        "--shopper-items",
        type=int,
        default=ShopperConfig.train_items,
        help="training items of the shopper-photo model",
    )
    parser.add_argument(
        "--shopper-copies",
        type=int,
        default=ShopperConfig.copies,
        help="synthetic shopper photos per item",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not logging.getLogger().handlers:
        setup_logging(args)
    cfg = FitConfig(
        seed=args.seed,
        minutes=args.minutes,
        joint_epochs=args.joint_epochs,
        looks_epochs=args.looks_epochs,
        threads=args.threads,
        cache_dir=args.cache_dir,
        shopper=not args.no_shopper,
        shopper_config=ShopperConfig(train_items=args.shopper_items, copies=args.shopper_copies),
    )
    report = fit(
        args.catalog,
        mapping=load_catalog_mapping(args.mapping),
        images_dir=args.images,
        out=args.out,
        looks=args.looks,
        cfg=cfg,
    )
    print(
        json.dumps(
            {
                "test": report["test"],
                "seconds": report["seconds"],
                "peak_rss_mb": report["peak_rss_mb"],
                "notes": report["notes"],
            },
            indent=2,
            default=float,
        )
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
