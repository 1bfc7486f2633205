"""Plain retrieval/classification metrics used by training validation and the evaluation tasks."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import numpy as np

from engine.catalog import Product
from engine.models.joint import JointModel, product_attribute


def _normalise(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)


def top_k_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """(Q, k) indices of the largest scores per row, best first."""
    k = min(k, scores.shape[1])
    part = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    rows = np.arange(scores.shape[0])[:, None]
    order = np.argsort(-scores[rows, part], axis=1, kind="stable")
    return part[rows, order]


def exact_recall_at_k(
    queries: np.ndarray, gallery: np.ndarray, targets: Sequence[int], k: int = 10
) -> float:
    """Fraction of queries whose target gallery row is among the k most similar (cosine)."""
    if len(targets) == 0:
        return float("nan")
    sims = _normalise(queries) @ _normalise(gallery).T
    top = top_k_indices(sims, k)
    tgt = np.asarray(targets)[:, None]
    return float((top == tgt).any(axis=1).mean())


def label_precision_at_k(embeddings: np.ndarray, labels: Sequence[str], k: int = 10) -> float:
    """Mean fraction of each item's k nearest other items (cosine) that share its label."""
    emb = _normalise(embeddings)
    sims = emb @ emb.T
    np.fill_diagonal(sims, -np.inf)
    top = top_k_indices(sims, k)
    lab = np.asarray(labels, dtype=object)
    return float((lab[top] == lab[:, None]).mean())


def label_precision_ceiling(labels: Sequence[str], k: int = 10) -> float:
    """The best precision@k any ranking can reach: an item with m other items of its label can
    have at most min(m, k) of them in its top k."""
    counts = Counter(labels)
    if not labels:
        return float("nan")
    return float(np.mean([min(counts[lab] - 1, k) / k for lab in labels]))


def _top_values(p: np.ndarray, top: int) -> np.ndarray:
    """``p`` with all but each row's ``top`` largest values set to 0 (what documents store)."""
    out = np.zeros_like(p)
    idx = np.argsort(-p, axis=1, kind="stable")[:, :top]
    rows = np.arange(p.shape[0])[:, None]
    out[rows, idx] = p[rows, idx]
    return out


def attribute_reranked_precision_at_k(
    query_emb: np.ndarray,
    gallery_emb: np.ndarray,
    query_probs: dict[str, np.ndarray],
    gallery_probs: dict[str, np.ndarray],
    labels: Sequence[str],
    floors: dict[str, float],
    *,
    depth: int = 60,
    k: int = 10,
    query_top: int = 5,
    gallery_top: int = 3,
) -> float:
    """Precision@k of photo search as the service ranks (:mod:`engine.search.attribute_rerank`):
    the ``depth`` nearest gallery items by cosine (row i of both sides is the same item, which
    is left out) re-scored by ``cosine x prod_a (floor_a + (1 - floor_a) * agreement_a)``, where
    agreement is ``sum_v q_a(v) d_a(v)`` over the query's top ``query_top`` and the item's
    stored top ``gallery_top`` values."""
    sims = _normalise(query_emb) @ _normalise(gallery_emb).T
    np.fill_diagonal(sims, -np.inf)
    cand = top_k_indices(sims, min(depth, sims.shape[1] - 1))
    rows = np.arange(sims.shape[0])[:, None]
    factor = np.ones(cand.shape, dtype=np.float64)
    for attr, floor in floors.items():
        if attr not in query_probs or attr not in gallery_probs:
            continue
        q = _top_values(np.asarray(query_probs[attr]), query_top)
        d = _top_values(np.asarray(gallery_probs[attr]), gallery_top)
        agree = np.minimum(1.0, np.einsum("qv,qcv->qc", q, d[cand]))
        factor *= floor + (1.0 - floor) * agree
    score = np.maximum(sims[rows, cand], 0.0) * factor
    order = np.argsort(-score, axis=1, kind="stable")[:, :k]
    top = cand[rows, order]
    lab = np.asarray(labels, dtype=object)
    return float((lab[top] == lab[:, None]).mean())


def label_key(value: str | None) -> str | None:
    """A label as compared: lower case, single spaces."""
    return None if value is None else " ".join(str(value).lower().split())


def top1_accuracy(predicted: Sequence[str | None], truth: Sequence[str | None]) -> float:
    """Share of labelled items predicted right; labels compare case- and space-insensitively
    ("White" is "WHITE": a model's label space and a catalog's may spell them differently)."""
    pairs = [(label_key(p), label_key(t)) for p, t in zip(predicted, truth, strict=True) if t]
    if not pairs:
        return float("nan")
    return float(np.mean([p == t for p, t in pairs]))


def knn_vote(
    train_emb: np.ndarray, train_labels: Sequence[str], query_emb: np.ndarray, k: int = 10
) -> list[str]:
    """Majority label among the k nearest training items (cosine); ties by first seen."""
    sims = _normalise(query_emb) @ _normalise(train_emb).T
    top = top_k_indices(sims, k)
    lab = np.asarray(train_labels, dtype=object)
    out = []
    for row in top:
        values, counts = np.unique(lab[row].astype(str), return_counts=True)
        out.append(str(values[np.argmax(counts)]))
    return out


def top_colours(products: Sequence[Product], n: int = 12) -> set[str]:
    counts = Counter(p.base_colour for p in products if p.base_colour)
    return {c for c, _ in counts.most_common(n)}


def joint_metrics(
    model: JointModel,
    image_inputs: np.ndarray,
    products: Sequence[Product],
    text_features: np.ndarray,
    title_features: np.ndarray | None = None,
    *,
    k: int = 10,
) -> dict[str, float]:
    """The joint-space metrics on one gallery: row i of every array is ``products[i]``.

    * ``text_to_image_recall_at_10``: the product text (``text_for_product``) of each item
      retrieves its own photo among the k nearest gallery images;
    * ``image_to_image_p_at_10_type_colour``: share of each photo's k nearest other photos with
      the same article_type and base_colour;
    * ``attr_top1_<name>``: top-1 accuracy of the attribute head on the photos (base colour on
      items whose colour is among the 12 most frequent of the gallery; from the colour head
      when the model has one).
    """
    img = model.embed_image_features(image_inputs)
    txt = model.embed_text_features(text_features)
    targets = list(range(len(products)))
    type_colour = [f"{p.article_type}|{p.base_colour}" for p in products]
    out = {
        "n_items": float(len(products)),
        "text_to_image_recall_at_10": exact_recall_at_k(txt, img, targets, k),
        "image_to_image_p_at_10_type_colour": label_precision_at_k(img, type_colour, k),
    }
    if title_features is not None:
        title = model.embed_text_features(title_features)
        out["title_to_image_recall_at_10"] = exact_recall_at_k(title, img, targets, k)
    probs = model.image_attribute_probabilities(image_inputs, img)
    colours = top_colours(products)
    fields = model.attribute_fields
    for name in ("article_type", "base_colour", "gender", "usage", "pattern", "sub_category"):
        vocab = model.attribute_vocab.get(name) or []
        if name not in probs or not vocab or probs[name].shape[1] == 0:
            continue  # a label space this catalog does not have
        pred = [vocab[j] for j in probs[name].argmax(axis=1)]
        truth = [product_attribute(p, name, fields) for p in products]
        if name == "base_colour":
            truth = [t if t in colours else None for t in truth]
        out[f"attr_top1_{name}"] = top1_accuracy(pred, truth)
    return out
