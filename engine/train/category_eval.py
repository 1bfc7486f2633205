"""Photo category top-1 as the search service predicts it: classifier, k-NN vote, fusion."""

from __future__ import annotations

import numpy as np

from engine.catalog import Product
from engine.models.joint import JointModel
from engine.search.category import predict_category
from engine.train.metrics import label_key


def category_metrics(
    model: JointModel,
    feats: np.ndarray,
    products: list[Product],
    is_train: np.ndarray,
    *,
    k: int = 10,
    alpha: float = 0.5,
) -> dict[str, float]:
    """Photo category top-1 on test photos: classifier alone, k-NN vote over the training
    photos alone, and their fusion (as the search service fuses them)."""
    if "article_type" not in model.attribute_vocab:
        return {}
    emb = model.embed_image_features(feats)
    probs = model.image_attribute_probabilities(feats, emb)["article_type"]
    vocab = model.attribute_vocab["article_type"]
    train_rows = np.flatnonzero(is_train)
    test_rows = np.flatnonzero(~is_train)
    if len(train_rows) == 0 or len(test_rows) == 0:
        return {}
    sims = emb[test_rows] @ emb[train_rows].T
    top = np.argsort(-sims, axis=1)[:, :k]
    hits = {"classifier": 0, "knn_vote": 0, "fusion": 0}
    n = 0
    for qi, row in enumerate(test_rows):
        truth = products[row].article_type
        if not truth:
            continue
        n += 1
        order = np.argsort(-probs[row])[:10]
        classifier = {vocab[j]: float(probs[row, j]) for j in order}
        neighbours = [(products[train_rows[j]].article_type, float(sims[qi, j])) for j in top[qi]]
        pred = predict_category(classifier, neighbours, alpha=alpha)
        want = label_key(truth)
        hits["classifier"] += int(label_key(pred.classifier_label) == want)
        hits["knn_vote"] += int(label_key(pred.vote_label) == want)
        hits["fusion"] += int(label_key(pred.label) == want)
    return {f"category_top1_{key}": v / max(1, n) for key, v in hits.items()} | {
        "category_photos": float(n)
    }
