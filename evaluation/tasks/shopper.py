"""Shopper photos -> the index: does a phone-like photo find the product, and its kind?

Queries: one synthetic shopper photo (:mod:`engine.train.datagen.shopper`, seed 7 + the run's
seed) of every photographed TEST item (the shopper model trains on training items only), or a
retailer's real photos (below). The gallery is the index as ingest builds it: every
photographed item's studio-photo vector and stored ``attr_prob``; ranking as photo search does
(:mod:`evaluation.served_photo_search`). Metrics, for the served pipeline (localisation + two
granularities + the query tower of ``shopper.pt``) and, with prefixes, for

* ``today_``: the pipeline before shopper photos (background-difference crop, joint tower);
* ``whole_only_``: no localisation (the whole photo, query tower);
* ``object_only_``: the located object alone (query tower);
* ``untrained_``: localisation + two granularities with the joint tower;
* ``studio_`` / ``today_studio_``: the test items' own studio photos as queries (the item left
  out of the gallery): precision@10 of same type and colour, and category top-1.

``exact_recall_at_10``: the item itself in the top 10; ``type_p_at_10``: share of the top 10 of
the item's article type; ``category_top1``: the category step's label is that type.

Real photos: ``ctx.cache["shopper_photos"] = (folder, labels.csv, label_map.toml|json)``
(``python -m evaluation report --tasks shopper --shopper-photos DIR --shopper-labels CSV
--shopper-label-map FILE``): the CSV has ``image,label`` rows, the map says which article types
count as each label (``pants = ["Trousers", "Jeans", "Track Pants"]``). Exact recall is then
null; type precision and category top-1 count any of the label's types.
"""

from __future__ import annotations

import csv
import json
import logging
import time
import tomllib
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from engine.catalog import is_test_id
from engine.documents import joint_embeddings
from engine.errors import InvalidImage, ModelUnavailable
from engine.models.encoders import ImageEncoder, TextEncoder
from engine.models.features import image_inputs
from engine.models.images import load_image_file
from engine.models.joint import JointModel, text_for_product
from engine.models.shopper import ShopperModel
from engine.models.static_text import document_text_encoder
from engine.train.features import cached_image_files
from engine.train.shopper_data import synthetic_photos
from evaluation.served_photo_search import Gallery, document_attr_prob, rank
from evaluation.tasks.base import EvalContext, TaskResult

logger = logging.getLogger(__name__)

NAME = "shopper"
SYNTH_SEED = 7


def _metrics(ranked, gallery: Gallery, truth_rows, allowed: list[set[str]]) -> dict[str, Any]:
    n = len(ranked.top)
    recall = (
        None
        if truth_rows is None
        else float(np.mean([truth_rows[i] in ranked.top[i] for i in range(n)]))
    )
    tp = float(
        np.mean(
            [np.mean([gallery.types[j] in allowed[i] for j in ranked.top[i]]) for i in range(n)]
        )
    )
    cat = float(np.mean([ranked.category[i] in allowed[i] for i in range(n)]))
    return {"exact_recall_at_10": recall, "type_p_at_10": tp, "category_top1": cat}


def category_step(joint, located, emb: np.ndarray) -> dict[str, Any]:
    """What the served category step reads for each photo (:meth:`ShopperModel.encode`): the
    shopper type head's distribution, alpha and threshold where set, else as before."""
    if all(loc.types is None for loc in located):
        return {}
    vocab = [str(v) for v in joint.attribute_vocab["article_type"]]
    clf = np.array(joint.attribute_probabilities(emb)["article_type"], np.float32)
    for i, loc in enumerate(located):
        if loc.types is not None:
            clf[i] = [loc.types[v] for v in vocab]
    return {
        "classifier": clf,
        "thresholds": [loc.category_threshold for loc in located],
        "alphas": [loc.category_alpha for loc in located],
    }


def _r(x: float | None) -> float | None:
    return None if x is None else round(float(x), 4)


def load_label_map(path: Path) -> dict[str, set[str]]:
    """label -> article types, from a TOML or JSON file of ``label = [types]``."""
    text = Path(path).read_text(encoding="utf-8")
    data = json.loads(text) if Path(path).suffix == ".json" else tomllib.loads(text)
    return {str(k).strip().lower(): {str(v) for v in vals} for k, vals in data.items()}


def real_photos(folder: Path, labels_csv: Path, label_map: Path):
    """(images, allowed type sets, labels) of a folder of real photos with a labels CSV."""
    mapping = load_label_map(label_map)
    images, allowed, labels = [], [], []
    with Path(labels_csv).open(newline="", encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            label = (row.get("label") or "").strip().lower()
            if label not in mapping:
                logger.warning("label %r of %s is not in the label map: skipped", label, row)
                continue
            try:
                images.append(load_image_file(Path(folder) / row["image"]))
            except InvalidImage as exc:
                logger.warning("skipping %s: %s", row.get("image"), exc.message)
                continue
            allowed.append(mapping[label])
            labels.append(label)
    return images, allowed, labels


def run(ctx: EvalContext) -> TaskResult:
    start = time.perf_counter()
    ms = ctx.settings.models
    try:
        joint = JointModel.load(ms.joint_path, ms.device, num_threads=ms.num_threads)
        try:
            shopper = ShopperModel.load(ms.bundle)
            shopper_note = "shopper.pt of the bundle"
        except ModelUnavailable:
            shopper = ShopperModel(None, None)
            shopper_note = "no shopper.pt: feature-norm box, joint tower"
    except ModelUnavailable as exc:
        return TaskResult(NAME, None, reason=exc.message, seconds=time.perf_counter() - start)

    def image_factory() -> ImageEncoder:
        return ImageEncoder(ms.device, batch_size=ms.batch_size, num_threads=ms.num_threads)

    joint.accelerate(ms.num_threads)
    encoder = joint.image_encoder
    by_id = {p.id: p for p in ctx.catalog}
    ds = ctx.get_dataset()  # photos as the catalog names them (<id>.jpg or a mapping's files)
    files = {i: ds.image(i) for i in by_id if ds.has_photo(i)}
    ids, studio_x = cached_image_files(files, ctx.images_dir, image_factory)
    if len(ids) < 20:
        return TaskResult(NAME, None, reason="fewer than 20 photographed items")
    vectors = joint.embed_image_features(studio_x)
    texts = [text_for_product(by_id[i]) for i in ids]
    doc_enc = document_text_encoder(
        ms.document_text_encoder,
        TextEncoder(ms.device, num_threads=ms.num_threads),
        ms.static_text_weights,
    )
    text_x = doc_enc.encode(texts) if doc_enc is not None else joint.text_features(texts)
    docs = joint_embeddings(joint.embed_text_features(text_x), vectors, np.ones(len(ids), bool))
    gallery = Gallery(
        ids, vectors, [by_id[i].article_type for i in ids], document_attr_prob(joint, docs)
    )
    row_of = {item: i for i, item in enumerate(ids)}
    metrics: dict[str, Any] = {}
    notes = [shopper_note, f"gallery: {len(ids)} photographed items (the index's photo vectors)"]

    real = ctx.cache.get("shopper_photos")
    if real:
        images, allowed, _ = real_photos(*real)
        truth_rows = None
        notes.append(f"real photos: {len(images)} from {real[0]}")
    else:
        test_ids = [i for i in ids if is_test_id(i)][: ctx.capped(10**9)]
        photos = synthetic_photos(test_ids, ctx.images_dir, SYNTH_SEED + ctx.seed, files=files)
        images = [ph.image for _, _, ph in photos]
        allowed = [{by_id[i].article_type or ""} for i, _, _ in photos]
        truth_rows = [row_of[i] for i, _, _ in photos]
        true_boxes = [ph.box for _, _, ph in photos]
        notes.append(
            f"synthetic shopper photos of {len(images)} test items (seed {SYNTH_SEED + ctx.seed})"
        )
    if not images:
        return TaskResult(NAME, None, reason="no query photos")
    today_x, located = [], []
    for s in tqdm(range(0, len(images), 32), desc="shopper photos", unit="batch"):
        chunk = images[s : s + 32]
        today_x.append(image_inputs(chunk, encoder))
        located.extend(shopper.locate(chunk, encoder))
    today = np.concatenate(today_x)
    variants = {"today": (joint.embed_image_features(today), today)}
    obj = np.stack([loc.object_inputs for loc in located])
    whole = np.stack([loc.whole_inputs for loc in located])
    e_o, e_w = shopper.tower_embed(joint, obj), shopper.tower_embed(joint, whole)
    served_emb, _, served_loc = shopper.encode(joint, located)
    variants["served"] = (served_emb, obj)
    variants["whole_only"] = (e_w, whole)
    variants["object_only"] = (e_o, obj)
    untrained = ShopperModel(shopper.objectness, None, shopper.config, box_head=shopper.box_head)
    variants["untrained"] = (
        untrained.fuse(untrained.tower_embed(joint, obj), untrained.tower_embed(joint, whole)),
        obj,
    )
    served_attrs = [shopper.rerank_attributes(loc) for loc in located]
    for name, (emb, feats) in variants.items():
        attrs = None if name == "today" else served_attrs
        step = category_step(joint, served_loc, emb) if name == "served" else {}
        ranked = rank(joint, gallery, emb, feats, attributes=attrs, **step)
        m = _metrics(ranked, gallery, truth_rows, allowed)
        prefix = "" if name == "served" else f"{name}_"
        metrics.update({prefix + k: _r(v) for k, v in m.items()})
    sources = [loc.source for loc in located]
    metrics["localised_share"] = _r(np.mean([s == "objectness" for s in sources]))
    metrics["studio_path_share"] = _r(np.mean([s == "background" for s in sources]))
    if truth_rows is not None:
        from engine.train.shopper_objectness import _iou

        metrics["box_iou"] = _r(
            np.mean([_iou(loc.box, b) for loc, b in zip(located, true_boxes, strict=True)])
        )
        metrics.update(_studio(ctx, joint, shopper, gallery, studio_x, row_of, encoder))
    return TaskResult(
        name=NAME,
        metrics=metrics,
        primary="type_p_at_10",
        notes=notes,
        seconds=time.perf_counter() - start,
    )


def _studio(ctx, joint, shopper, gallery, studio_x, row_of, encoder) -> dict[str, Any]:
    """Test items' own studio photos as queries (item excluded): today vs served."""
    test_rows = [row_of[i] for i in gallery.ids if is_test_id(i)][: ctx.capped(10**9)]
    images, kept = [], []
    for r in test_rows:
        try:
            images.append(load_image_file(ctx.get_dataset().image(gallery.ids[r])))
            kept.append(r)
        except InvalidImage:
            continue
    located = []
    for s in range(0, len(images), 32):
        located.extend(shopper.locate(images[s : s + 32], encoder))
    emb, obj, located = shopper.encode(joint, located)
    step = category_step(joint, located, emb)
    today_x = studio_x[kept]
    labels = [
        f"{gallery.types[r]}|{ctx.get_dataset().by_id[gallery.ids[r]].base_colour}" for r in kept
    ]
    all_labels = [
        f"{t}|{ctx.get_dataset().by_id[i].base_colour}"
        for i, t in zip(gallery.ids, gallery.types, strict=True)
    ]
    out: dict[str, Any] = {}
    for prefix, (e, f) in (
        ("studio_", (emb, obj)),
        ("today_studio_", (joint.embed_image_features(today_x), today_x)),
    ):
        attrs = [shopper.rerank_attributes(loc) for loc in located] if prefix == "studio_" else None
        extra = step if prefix == "studio_" else {}
        ranked = rank(joint, gallery, e, f, exclude=kept, attributes=attrs, **extra)
        p = np.mean(
            [np.mean([all_labels[j] == labels[i] for j in ranked.top[i]]) for i in range(len(kept))]
        )
        cat = np.mean([ranked.category[i] == gallery.types[kept[i]] for i in range(len(kept))])
        out[prefix + "p_at_10_type_colour"] = _r(p)
        out[prefix + "category_top1"] = _r(cat)
    out["studio_path_share_on_studio"] = _r(
        np.mean([loc.source == "background" for loc in located])
    )
    return out
