"""Train the shopper-photo model (``shopper.pt``): objectness head, query image tower, fusion.

Without shopper photos of our own, training uses synthetic ones
(:mod:`engine.train.datagen.shopper`) of TRAINING items (never test items; validation items,
``is_val_id``, choose the threshold and the fusion weight):

1. **Localisers** (:mod:`engine.train.shopper_objectness`): the objectness head, a linear
   layer per cell of the backbone's last convolution map, soft binary cross-entropy to the
   share of object pixels in the cell (known from compositing), its box threshold the one with
   the best mean IoU to the true box on validation photos; and the box head, which regresses
   the box from the whole map (GIoU + L1), its margin chosen the same way. The box head's box
   is the one served.
2. **Backbone's last stages** for object crops (:mod:`engine.train.shopper_backbone`,
   ``--tune-backbone``): fine-tuned so a synthetic photo's object crop gets its studio photo's
   pooled features; the tower and the type head below train on the adapted features.
3. **Query image tower**: a copy of the joint image tower, fine-tuned so that a synthetic photo
   (its true object box jittered, and the whole frame) retrieves its own studio photo's
   embedding among ALL photographed items' embeddings (softmax over the whole gallery: the
   index's vectors are the target and stay as they are, nothing is re-indexed), plus article
   type cross-entropy through the frozen attribute head (the category step reads the query
   embedding) and a distillation term keeping studio photos where the joint tower puts them.
4. **Fusion weight** of the object and whole-photo embeddings: the best exact-item recall@10
   of localised validation photos (the objectness box, as served) against that gallery.
5. **Type head** and the category step for shopper photos (:mod:`engine.train.shopper_types`):
   an MLP over both granularities, cross-entropy on the training photos; its mix with the
   attribute head, the classifier/vote weight and the restriction threshold are chosen on the
   localised validation photos.

``python -m engine.train shopper --out bundles/shopper`` (default: the shipped bundle).
"""

from __future__ import annotations

import argparse
import copy
import json
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from engine.bundle import read_manifest, write_manifest
from engine.catalog import Product, load_catalog_mapping
from engine.catalog.product import local_image_files
from engine.catalog.readers import read_products
from engine.cli import CommandParser, fail, setup_logging
from engine.errors import EngineError, InvalidInput
from engine.files import file_sha1
from engine.models.accel import accelerate_image
from engine.models.encoders import IMAGE_FEATURE_DIM, ImageEncoder, apply_num_threads
from engine.models.joint import JointModel
from engine.models.shopper import ShopperModel
from engine.models.versions import WEIGHTS_DIR
from engine.settings import DEFAULT_SHARED_DATA
from engine.train import shopper_data as D
from engine.train.features import cached_image_files
from engine.train.shopper_backbone import (
    StudioTeacher,
    adapted_pooled,
    prefix_function,
    train_tail,
)
from engine.train.shopper_budget import (
    FEW_VAL_ITEMS,
    MIN_TRAIN_ITEMS,
    MIN_VAL_ITEMS,
    ShopperConfig,
    cut_to_photos,
    photos_in,
    val_seconds_per_photo,
)
from engine.train.shopper_objectness import fit_localisers
from engine.train.shopper_types import choose_category_step, train_type_head

logger = logging.getLogger(__name__)


def train_query_tower(
    joint: JointModel,
    gallery: np.ndarray,
    rows: np.ndarray,
    studio: np.ndarray,
    views: list[np.ndarray],
    types: np.ndarray,
    *,
    epochs: int = 12,
    temperature: float = 0.05,
    distill: float = 4.0,
    type_weight: float = 0.3,
    seed: int = 0,
) -> nn.Module:
    """See the module docstring; ``rows[i]``: gallery row of training item i; ``types[i]``
    its article-type index in the attribute head (-1 unknown)."""
    torch.manual_seed(seed)
    tower = copy.deepcopy(joint.net.image_tower).float().cpu().train()
    frozen = joint.net.image_tower.float().cpu().eval()
    attr_head = joint.net
    for p in attr_head.parameters():
        p.requires_grad_(False)
    names = list(attr_head.attribute_names)
    type_pos = names.index("article_type") if "article_type" in names else None
    g = torch.from_numpy(gallery)
    s = torch.from_numpy(studio)
    with torch.no_grad():
        studio_target = nn.functional.normalize(frozen(s), dim=-1)
    vs = [torch.from_numpy(v) for v in views]
    r = torch.from_numpy(rows.astype(np.int64))
    t = torch.from_numpy(types.astype(np.int64))
    opt = torch.optim.AdamW(tower.parameters(), lr=3e-4, weight_decay=1e-2)
    n = len(r)
    for epoch in range(epochs):
        perm = torch.randperm(n)
        total = 0.0
        for start in range(0, n, 128):
            idx = perm[start : start + 128]
            loss = torch.zeros(())
            for v in vs:
                q = nn.functional.normalize(tower(v[idx]), dim=-1)
                loss = loss + nn.functional.cross_entropy(q @ g.T / temperature, r[idx])
                known = t[idx] >= 0
                if type_pos is not None and known.any():
                    logits = attr_head.attribute_logits(q)[type_pos]
                    ce = nn.functional.cross_entropy(logits[known], t[idx][known])
                    loss = loss + type_weight * ce
            qs = nn.functional.normalize(tower(s[idx]), dim=-1)
            loss = loss + distill * (1 - (qs * studio_target[idx]).sum(-1)).mean()
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss.detach()) * len(idx)
        logger.info("query tower epoch %d: loss %.4f", epoch + 1, total / n)
    return tower.eval()


def studio_teacher(
    joint: JointModel, sets: list[D.SynthSet], studio: np.ndarray, weight: float
) -> StudioTeacher | None:
    """The tail's studio type target (None when ``weight`` is 0 or the joint model has no
    photo type head): each training crop's colour inputs, its studio photo's served type
    distribution."""
    if weight <= 0 or joint.type_head is None or "article_type" not in joint.attribute_vocab:
        return None
    probs = joint.image_attribute_probabilities(studio)["article_type"]
    colour = np.concatenate([p.object[:, IMAGE_FEATURE_DIM:] for p in sets])
    return StudioTeacher(joint.type_head, colour, probs, weight)


def recall_at_10(queries: np.ndarray, gallery: np.ndarray, rows: np.ndarray) -> float:
    sims = queries @ gallery.T
    top = np.argpartition(-sims, 10, axis=1)[:, :10]
    return float(np.mean([rows[i] in top[i] for i in range(len(rows))]))


CHUNK = 2000


def item_chunks(ids: list[str], n_train: int, n_val: int | None, seed: int) -> list[list[str]]:
    """Training items in chunks of :data:`CHUNK`: the first is ``split_ids(ids, CHUNK)``, the
    k-th adds the items of ``split_ids(ids, k * CHUNK)`` not in the earlier ones (the seeded
    sample grows by prefix), so each chunk's synthetic features are cached once."""
    chunks: list[list[str]] = []
    seen: set[str] = set()
    for end in [*range(CHUNK, n_train, CHUNK), n_train]:
        part = sorted(set(D.split_ids(ids, end, n_val, seed)[0]) - seen)
        if part:
            chunks.append(part)
            seen.update(part)
    return chunks


def build_parser() -> argparse.ArgumentParser:
    parser = CommandParser("python -m engine.train shopper", __doc__)
    parser.add_argument(
        "--catalog",
        type=Path,
        default=DEFAULT_SHARED_DATA / "catalog.jsonl.gz",
        help="JSONL(.gz), CSV or Parquet",
    )
    parser.add_argument(
        "--mapping", default=None, help="mapping file or preset (mango, myntra); default: ours"
    )
    parser.add_argument("--images", type=Path, default=DEFAULT_SHARED_DATA / "images")
    parser.add_argument("--joint", type=Path, default=None, help="joint.pt or bundle (default)")
    parser.add_argument("--out", type=Path, default=WEIGHTS_DIR, help="bundle folder out")
    d = ShopperConfig()
    parser.add_argument("--train-items", type=int, default=d.train_items)
    parser.add_argument(
        "--val-items", type=int, default=None, help="validation items (default: all of them)"
    )
    parser.add_argument("--epochs", type=int, default=d.epochs)
    parser.add_argument("--copies", type=int, default=d.copies, help="synthetic photos per item")
    parser.add_argument(
        "--extra-copies", type=int, default=None, help="photos per item beyond the first 2,000"
    )
    parser.add_argument(
        "--type-hidden", type=int, default=d.type_hidden, help="type head (0: none)"
    )
    parser.add_argument("--type-epochs", type=int, default=d.type_epochs)
    parser.add_argument(
        "--type-members",
        type=int,
        default=d.type_members,
        help="type heads (seeds) merged into one",
    )
    parser.add_argument(
        "--tune-backbone",
        type=int,
        default=d.tune_backbone,
        help="fine-tune the backbone from this block on for object crops (0: off)",
    )
    parser.add_argument("--tail-epochs", type=int, default=d.tail_epochs)
    parser.add_argument(
        "--tail-type-weight",
        type=float,
        default=d.tail_type_weight,
        help="type probe loss in the tail",
    )
    parser.add_argument(
        "--tail-teacher-weight",
        type=float,
        default=d.tail_teacher_weight,
        help="studio type head's distribution as a target in the tail (0: off)",
    )
    parser.add_argument("--seed", type=int, default=d.seed)
    parser.add_argument("--cache-dir", type=Path, default=d.cache_dir)
    parser.add_argument(
        "--studio-cache-dir", type=Path, default=None, help="studio features (default cache)"
    )
    parser.add_argument("--threads", type=int, default=d.threads)
    return parser


def config_from_args(args: argparse.Namespace) -> ShopperConfig:
    names = {f.name for f in fields(ShopperConfig)}
    return ShopperConfig(**{k: v for k, v in vars(args).items() if k in names})


def fit(args: argparse.Namespace) -> dict[str, Any]:
    """The CLI: the catalog through its mapping, then :func:`fit_shopper` into ``--out``."""
    products, failed = read_products(args.catalog, load_catalog_mapping(args.mapping))
    if not products:
        raise InvalidInput(f"no valid product in {args.catalog} ({len(failed)} rows failed)")
    files = local_image_files(products, args.images)
    joint = JointModel.load(args.joint, "cpu", num_threads=args.threads)
    return fit_shopper(products, files, args.images, joint, config_from_args(args), Path(args.out))


def fit_shopper(
    product_list: Sequence[Product],
    files: Mapping[str, Path],
    images_dir: Path,
    joint: JointModel,
    cfg: ShopperConfig,
    out: Path,
    deadline: float | None = None,
) -> dict[str, Any]:
    """Train ``shopper.pt`` (see the module docstring) for ``joint`` on any catalog's photos
    (``files``: item id -> studio photo) and write it, with ``shopper.metrics.json``, to
    ``out`` (listed in its manifest when ``out`` is a bundle). ``deadline`` (a ``time.time()``):
    the training photos are cut (:func:`cut_to_photos`) to what this machine makes in the time
    left, as measured on the validation photos. Returns the metrics; raises
    :class:`InvalidInput` when there are too few photographed training or validation items
    or no time for them."""
    t0 = time.time()
    apply_num_threads(cfg.threads)
    products: dict[str, Product] = {p.id: p for p in product_list}

    def factory() -> Any:
        return accelerate_image(ImageEncoder("cpu", num_threads=cfg.threads), threads=cfg.threads)

    ids, studio_x = cached_image_files(
        {i: files[i] for i in products if i in files},
        images_dir,
        factory,
        cache_dir=cfg.studio_cache_dir or cfg.cache_dir,
    )
    gallery = joint.embed_image_features(studio_x)
    row_of = {item: i for i, item in enumerate(ids)}
    train_ids, val_ids = D.split_ids(ids, cfg.train_items, cfg.val_items, cfg.seed)
    if len(train_ids) < MIN_TRAIN_ITEMS or len(val_ids) < MIN_VAL_ITEMS:
        raise InvalidInput(
            f"too few photographed items for the shopper-photo model: {len(train_ids)} training "
            f"(at least {MIN_TRAIN_ITEMS}), {len(val_ids)} validation (at least {MIN_VAL_ITEMS})",
            train_items=len(train_ids),
            val_items=len(val_ids),
        )
    if len(val_ids) < FEW_VAL_ITEMS:
        logger.warning(
            "only %d validation items: the box threshold, fusion weight and category step "
            "chosen on them are noisy",
            len(val_ids),
        )
    split = int(cfg.tune_backbone or 0)
    base_model = ImageEncoder("cpu", num_threads=cfg.threads).model if split else None
    prefix = (f"lite0-{split}", prefix_function(base_model, split)) if base_model else None

    def synthetic(
        items: list[str], seed: int, photo_copy: int = 0, keep_maps: int = 0
    ) -> D.SynthSet:
        return D.cached(
            items,
            images_dir,
            factory,
            seed=seed,
            copy=photo_copy,
            keep_maps=keep_maps,
            cache_dir=cfg.cache_dir,
            prefix=prefix,
            files=files,
        )

    t_val = time.time()
    val = synthetic(val_ids, cfg.seed + 1, keep_maps=len(val_ids))
    if deadline is not None:
        per_photo = val_seconds_per_photo(time.time() - t_val, len(val.ids), val.from_cache)
        cut = cut_to_photos(cfg, photos_in(cfg, deadline - time.time() - 60.0, per_photo))
        if cut is None:
            raise InvalidInput("no time left for the shopper-photo model's training photos")
        cfg = cut
    chunks = item_chunks(ids, cfg.train_items, cfg.val_items, cfg.seed)
    train = synthetic(chunks[0], cfg.seed, keep_maps=2000)
    more = (
        [  # further synthetic copies of the same items: more backgrounds and poses
            synthetic(chunks[0], cfg.seed, photo_copy=c) for c in range(1, cfg.copies)
        ]
        + [  # items beyond the first chunk (cached per chunk, so a larger run reuses a smaller)
            synthetic(chunk, cfg.seed, photo_copy=c)
            for chunk in chunks[1:]
            for c in range(cfg.copies if cfg.extra_copies is None else cfg.extra_copies)
        ]
    )
    # 1. objectness and the box head
    head, box_head, result = fit_localisers(train, val, cfg.seed)
    threshold = result.pop("threshold")
    box_config = {"box_margin": result["box_margin"]} if box_head is not None else {}
    # 2. query tower
    vocab = list(joint.attribute_vocab.get("article_type") or [])  # empty: no type in the catalog
    tindex = {v: i for i, v in enumerate(vocab)}
    sets = [train, *more]
    all_ids = [i for part in sets for i in part.ids]
    rows = np.asarray([row_of[i] for i in all_ids])
    types = np.asarray([tindex.get(products[i].article_type or "", -1) for i in all_ids])
    tail = None
    if base_model is not None:  # 2a. the backbone's last stages for object crops
        vrows_true = np.asarray([row_of[i] for i in val.ids])
        tail, result["backbone_tail"] = train_tail(
            base_model,
            split,
            np.concatenate([p.object_maps for p in sets]),  # type: ignore[misc]
            studio_x[rows, :IMAGE_FEATURE_DIM],
            val=(val.object_maps, studio_x[vrows_true, :IMAGE_FEATURE_DIM]),  # type: ignore[arg-type]
            epochs=cfg.tail_epochs,
            labels=types,
            type_weight=cfg.tail_type_weight,
            teacher=studio_teacher(joint, sets, studio_x[rows], cfg.tail_teacher_weight),
            seed=cfg.seed,
        )
        for p in sets:  # the query tower and the type head learn on the adapted features
            p.object[:, :IMAGE_FEATURE_DIM] = adapted_pooled(base_model, tail, p.object_maps)  # type: ignore[arg-type]
            p.object_maps = None
    tower = train_query_tower(
        joint,
        gallery,
        rows,
        studio_x[rows],
        [np.concatenate([p.object for p in sets]), np.concatenate([p.whole for p in sets])],
        types,
        epochs=cfg.epochs,
        seed=cfg.seed,
    )
    # 3. fusion weight on localised validation photos, as served
    shopper = ShopperModel(
        head, tower, {"threshold": threshold, **box_config}, backbone_tail=tail, box_head=box_head
    )
    photos = D.synthetic_photos(val_ids, images_dir, cfg.seed + 1, files=files)
    located = shopper.locate([ph.image for _, _, ph in photos], factory())
    vrows = np.asarray([row_of[i] for i, _, _ in photos])
    obj = np.stack([loc.object_inputs for loc in located])
    whole = np.stack([loc.whole_inputs for loc in located])
    for name, tw in (("joint tower", None), ("query tower", tower)):
        m = ShopperModel(head, tw, backbone_tail=tail, box_head=box_head)
        e_o, e_w = m.tower_embed(joint, obj), m.tower_embed(joint, whole)
        curve = {
            w: recall_at_10(m.fuse(e_o, e_w, w), gallery, vrows)
            for w in (0.0, 0.25, 0.5, 0.6, 0.75, 0.9, 1.0)
        }
        result[f"val_recall_at_10_by_object_weight ({name})"] = curve
        logger.info("%s: validation recall@10 by object weight %s", name, curve)
    curve = result["val_recall_at_10_by_object_weight (query tower)"]
    weight = max(curve, key=lambda k: curve[k])
    shopper.config["object_weight"] = weight
    # 4. type head, and the category step for shopper photos
    if cfg.type_hidden and vocab:
        objs, wholes = (
            np.concatenate([p.object for p in sets]),
            np.concatenate([p.whole for p in sets]),
        )
        x = ShopperModel.type_features(
            shopper.tower_embed(joint, objs), shopper.tower_embed(joint, wholes), objs, wholes
        )
        del objs, wholes
        shopper.type_head = train_type_head(
            x,
            types,
            len(vocab),
            hidden=cfg.type_hidden,
            epochs=cfg.type_epochs,
            seed=cfg.seed,
            members=cfg.type_members,
        )
        del x
        e_o, e_w = shopper.tower_embed(joint, obj), shopper.tower_embed(joint, whole)
        emb = shopper.fuse(e_o, e_w)
        probs = shopper.type_probabilities(joint, e_o, e_w, located)
        assert probs is not None
        attr = joint.attribute_probabilities(emb)["article_type"]
        other = np.asarray(
            [i for i, loc in enumerate(located) if loc.source != "background"], dtype=np.int64
        )
    if cfg.type_hidden and vocab and len(other):
        chosen = choose_category_step(
            probs[other],
            attr[other],
            [str(v) for v in vocab],
            emb[other],
            gallery,
            [products[i].article_type for i in ids],
            [products[photos[i][0]].article_type for i in other],
            vrows[other],
        )
        shopper.config.update(
            {k: chosen[k] for k in ("type_weight", "category_alpha", "category_threshold")}
        )
        result["category_step"] = chosen
    result.update(
        threshold=threshold,
        object_weight=weight,
        seconds=round(time.time() - t0, 1),
        train_items=len({i for p in sets for i in p.ids}),
        train_photos=len(all_ids),
        val_items=len(val.ids),
    )
    folder = Path(out)
    path = shopper.save(folder / "shopper.pt")
    (folder / "shopper.metrics.json").write_text(json.dumps(result, indent=2) + "\n")
    manifest = read_manifest(folder)
    if manifest is not None:  # a bundle: list the part as joint.pt and compat.pt are
        manifest.parts["shopper"] = {"file": path.name, "sha1": file_sha1(path)}
        write_manifest(folder, manifest)
    logger.info("wrote %s (%.1f s)", path, time.time() - t0)
    return result


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    setup_logging(args)
    try:
        fit(args)
    except EngineError as exc:
        return fail(exc)
    return 0
