"""Joint image-text space on the TEST split of the photographed items.

Metrics (see :func:`engine.train.metrics.joint_metrics`): ``text_to_image_recall_at_10`` (the
product text finds its own photo among the test photos), ``image_to_image_p_at_10_type_colour``
(plain cosine in the joint space), ``attr_top1_article_type``, ``attr_top1_base_colour`` (12
most frequent colours), plus extras; for image -> image also its ceiling on this gallery and the
service's attribute-aware photo ranking (see :func:`_photo_search_metrics`).
Baselines: frozen ImageNet features (image->image, and a k-NN attribute vote from the training
photos) and random (expected values by counting).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from engine.catalog import Product, is_test_id
from engine.documents import joint_embeddings
from engine.errors import ModelUnavailable
from engine.models.encoders import IMAGE_FEATURE_DIM, ImageEncoder, TextEncoder
from engine.models.joint import JointModel, text_for_product
from engine.models.static_text import document_text_encoder
from engine.search.attribute_rerank import RERANK_ATTRIBUTES, AttributeRerank
from engine.train import metrics as M
from engine.train.features import cached_image_inputs, cached_text_features
from evaluation.tasks.base import EvalContext, TaskResult

logger = logging.getLogger(__name__)

NAME = "joint"
CACHE_KEY = "joint.inputs"


@dataclass
class JointInputs:
    """The loaded model and the cached inputs of the photographed items (test and train)."""

    model: JointModel
    test: list[Product]
    test_images: np.ndarray
    test_text: np.ndarray
    test_title: np.ndarray
    test_doc_text: (
        np.ndarray
    )  # the texts as ingest encodes documents (models.document_text_encoder)
    train: list[Product]
    train_images: np.ndarray


def prepare(ctx: EvalContext) -> JointInputs | str:
    """Load the model and the (cached) features; a reason string when it cannot run."""
    if CACHE_KEY in ctx.cache:
        cached: JointInputs = ctx.cache[CACHE_KEY]
        return cached
    ms = ctx.settings.models
    try:
        model = JointModel.load(
            ms.joint_path,
            ms.device,
            batch_size=ms.batch_size,
            num_threads=ms.num_threads,
        )
    except ModelUnavailable as exc:
        return f"joint model unavailable: {exc.message}"

    def image_factory() -> ImageEncoder:
        return ImageEncoder(ms.device, batch_size=ms.batch_size, num_threads=ms.num_threads)

    def text_factory() -> TextEncoder:
        return TextEncoder(ms.device, num_threads=ms.num_threads)

    by_id = {p.id: p for p in ctx.catalog}
    ids, feats = cached_image_inputs(list(by_id), ctx.images_dir, image_factory)
    if not ids:
        return f"no photos of catalog items in {ctx.images_dir}"
    test_rows = [i for i, item in enumerate(ids) if is_test_id(item)]
    train_rows = [i for i, item in enumerate(ids) if not is_test_id(item)]
    if len(test_rows) < 11:
        return f"only {len(test_rows)} photographed test items (need > 10)"
    test = [by_id[ids[i]] for i in test_rows]
    texts = [text_for_product(p) for p in test]
    titles = [p.title for p in test]
    test_text = cached_text_features(texts, text_factory)
    try:
        doc_encoder = document_text_encoder(
            ms.document_text_encoder, text_factory(), ms.static_text_weights
        )
    except ModelUnavailable as exc:
        return f"document text encoder unavailable: {exc.message}"
    inputs = JointInputs(
        model=model,
        test=test,
        test_images=feats[test_rows],
        test_text=test_text,
        test_title=cached_text_features(titles, text_factory),
        test_doc_text=test_text if doc_encoder is None else doc_encoder.encode(texts),
        train=[by_id[ids[i]] for i in train_rows],
        train_images=feats[train_rows],
    )
    ctx.cache[CACHE_KEY] = inputs
    return inputs


def _random_p_at_k(labels: list[str]) -> float:
    """Expected P@k of a random ranking: mean share of OTHER items with the same label."""
    values, counts = np.unique(np.asarray(labels, dtype=str), return_counts=True)
    n = len(labels)
    lookup = dict(zip(values.tolist(), counts.tolist(), strict=True))
    return float(np.mean([(lookup[v] - 1) / (n - 1) for v in labels]))


def _baselines(inp: JointInputs) -> dict[str, dict[str, Any]]:
    test = inp.test
    n = len(test)
    type_colour = [f"{p.article_type}|{p.base_colour}" for p in test]
    colours = M.top_colours(test)
    frozen_test = inp.test_images[:, :IMAGE_FEATURE_DIM]
    frozen: dict[str, Any] = {
        "image_to_image_p_at_10_type_colour": M.label_precision_at_k(frozen_test, type_colour, 10),
    }
    if inp.train:
        frozen_train = inp.train_images[:, :IMAGE_FEATURE_DIM]
        for name in ("article_type", "base_colour"):
            train_labels = [getattr(p, name) or "" for p in inp.train]
            pred = M.knn_vote(frozen_train, train_labels, frozen_test, k=10)
            truth = [getattr(p, name) for p in test]
            if name == "base_colour":
                truth = [t if t in colours else None for t in truth]
            frozen[f"attr_top1_{name}"] = M.top1_accuracy(pred, truth)
    frozen["note"] = "EfficientNet-Lite0 pooled features, cosine; attributes by 10-NN vote"
    majority: dict[str, Any] = {}
    for name in ("article_type", "base_colour"):
        truth = [getattr(p, name) for p in test]
        if name == "base_colour":
            truth = [t if t in colours else None for t in truth]
        known = [t for t in truth if t is not None]
        if known:
            top = max(set(known), key=known.count)
            majority[f"attr_top1_{name}"] = known.count(top) / len(known)
    random = {
        "text_to_image_recall_at_10": min(1.0, 10 / n),
        "image_to_image_p_at_10_type_colour": _random_p_at_k(type_colour),
        **majority,
        "note": "random ranking (expected value); attributes: majority class",
    }
    return {"frozen_imagenet": frozen, "random": random}


def _photo_search_metrics(inp: JointInputs, img: np.ndarray, k: int = 10) -> dict[str, float]:
    """Image -> image precision@k of same type and colour, beyond the plain cosine ranking:

    * ``image_to_image_p_at_10_ceiling``: the best any ranking can reach on this gallery (an
      item whose type|colour has m < 10 other test items cannot score above m / 10);
    * ``image_to_image_p_at_10_reranked``: the photo-search ranking of the service (top 60 by
      cosine re-scored by colour and type agreement, :mod:`engine.search.attribute_rerank`),
      gallery attributes also predicted from the photos alone;
    * ``photo_to_products_p_at_10_type_colour``: the same, with the gallery as ingest indexes
      it: each test product's attributes predicted from its photo + text vector (top 3 kept),
      the query a photo alone (a shopper's upload).
    """
    model = inp.model
    labels = [f"{p.article_type}|{p.base_colour}" for p in inp.test]
    rr = AttributeRerank()
    floors = rr.floors()
    photo_probs = model.image_attribute_probabilities(inp.test_images, img)
    photo_probs = {a: v for a, v in photo_probs.items() if a in RERANK_ATTRIBUTES}
    docs = joint_embeddings(
        model.embed_text_features(inp.test_doc_text), img, np.ones(len(inp.test), dtype=bool)
    )
    doc_probs = {
        a: v for a, v in model.attribute_probabilities(docs).items() if a in RERANK_ATTRIBUTES
    }
    common = {"depth": rr.depth, "k": k}
    return {
        "image_to_image_p_at_10_ceiling": M.label_precision_ceiling(labels, k),
        "image_to_image_p_at_10_reranked": M.attribute_reranked_precision_at_k(
            img, img, photo_probs, photo_probs, labels, floors, gallery_top=5, **common
        ),
        "photo_to_products_p_at_10_type_colour": M.attribute_reranked_precision_at_k(
            img, img, photo_probs, doc_probs, labels, floors, **common
        ),
    }


def run(ctx: EvalContext) -> TaskResult:
    start = time.perf_counter()
    inp = prepare(ctx)
    if isinstance(inp, str):
        return TaskResult(NAME, None, reason=inp, seconds=time.perf_counter() - start)
    metrics = M.joint_metrics(
        inp.model, inp.test_images, inp.test, inp.test_text, inp.test_title, k=10
    )
    model = inp.model
    img = model.embed_image_features(inp.test_images)
    txt = model.embed_text_features(inp.test_text)
    metrics.update(_photo_search_metrics(inp, img))
    targets = list(range(len(inp.test)))
    curve = {k: M.exact_recall_at_k(txt, img, targets, k) for k in (1, 5, 10, 20, 50)}
    for k in (1, 5, 50):
        metrics[f"text_to_image_recall_at_{k}"] = curve[k]
    random_curve = {k: min(1.0, k / len(inp.test)) for k in curve}
    plots = []
    try:
        from evaluation.plots import recall_curves

        plots.append(
            recall_curves(
                {"joint model": curve, "random": random_curve},
                ctx.plot_path("joint_text_to_image_recall"),
                title="Text -> image, exact item (test split)",
            )
        )
    except Exception as exc:  # noqa: BLE001 - a missing plot must not fail the metrics
        logger.warning("could not draw the recall plot: %s", exc)
    notes = [
        f"test split: {len(inp.test)} photographed items (gallery = their photos)",
        "text query = text_for_product (title + key attributes + visual description); "
        "title_to_image_recall_at_10 uses the title alone",
        f"checkpoint: {ctx.settings.models.joint_path or 'shipped default'}",
    ]
    return TaskResult(
        name=NAME,
        metrics=metrics,
        primary="text_to_image_recall_at_10",
        baselines=_baselines(inp),
        plots=plots,
        notes=notes,
        seconds=time.perf_counter() - start,
    )
