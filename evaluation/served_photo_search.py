"""Photo search as the service ranks it, over an in-memory gallery (no cluster).

The steps of :class:`engine.search.image_search.ImageSearch` for a photo upload, on the same
vectors the index holds: the category step (attribute-head classifier fused with the
similarity-weighted vote of the ``vote_k`` nearest gallery photos,
:func:`engine.search.category.predict_category`), k-NN restricted to the predicted type when
confident, and the colour x type re-rank of the top ``depth``
(:func:`engine.search.attribute_rerank.rerank`) against the documents' stored ``attr_prob``
(as ingest computes it: the attribute head on the document's joint photo + text vector, top 3).
Exact cosine instead of HNSW; the LTR blend is not applied.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from engine.documents import attr_prob_object
from engine.search.attribute_rerank import (
    RERANK_ATTRIBUTES,
    AttributeRerank,
    query_distribution,
    rerank,
)
from engine.search.category import predict_category


@dataclass
class Gallery:
    ids: list[str]
    vectors: np.ndarray  # (N, dim) the documents' image vectors
    types: list[str | None]  # article_type of each document
    attr_prob: list[dict[str, dict[str, float]]]  # stored attr_prob of each document


@dataclass
class Ranked:
    top: list[list[int]]  # gallery rows of each query's top k
    category: list[str | None]  # predicted category label of each query


def document_attr_prob(model, doc_vectors: np.ndarray) -> list[dict[str, dict[str, float]]]:
    probs = model.attribute_probabilities(doc_vectors)
    vocab = model.attribute_vocab
    out = []
    for i in range(doc_vectors.shape[0]):
        dist = {
            a: {v: float(p) for v, p in zip(vocab[a], probs[a][i], strict=True)}
            for a in RERANK_ATTRIBUTES
            if a in probs
        }
        out.append(attr_prob_object(dist, 3))
    return out


def rank(
    model,
    gallery: Gallery,
    queries: np.ndarray,
    query_features: np.ndarray,
    *,
    exclude: Sequence[int | None] | None = None,
    k: int = 10,
    vote_k: int = 20,
    alpha: float = 0.5,
    threshold: float = 0.5,
    rr: AttributeRerank = AttributeRerank(),
    attributes: Sequence[tuple[str, ...] | None] | None = None,
    classifier: np.ndarray | None = None,
    rerank_types: np.ndarray | None = None,
    thresholds: Sequence[float | None] | None = None,
    alphas: Sequence[float | None] | None = None,
) -> Ranked:
    """Each query's top ``k`` gallery rows as photo search ranks them; ``exclude[i]``: a row
    left out (the query item itself, for catalog photos); ``attributes[i]``: the attributes
    query i re-ranks by (None: all); ``classifier``: (N, article types) probabilities the
    category step reads instead of the attribute head's on the query vector (the shopper
    model's type head); ``rerank_types``: likewise for the re-rank's type distribution;
    ``thresholds[i]``, ``alphas[i]``: query i's restriction threshold and classifier weight
    (None: ``threshold``, ``alpha``)."""
    alpha = float(getattr(model, "config", {}).get("category_alpha", alpha))
    sims = queries @ gallery.vectors.T
    if exclude is not None:
        for i, row in enumerate(exclude):
            if row is not None:
                sims[i, row] = -np.inf
    clf = model.attribute_probabilities(queries).get("article_type")
    type_vocab = model.attribute_vocab.get("article_type", [])
    qprobs = model.image_attribute_probabilities(query_features, queries)
    if classifier is not None:
        clf = classifier
    if rerank_types is not None:
        qprobs = {**qprobs, "article_type": rerank_types}
    types = np.asarray([t or "" for t in gallery.types], dtype=object)
    tops, cats = [], []
    for i in range(len(queries)):
        near = np.argpartition(-sims[i], vote_k)[:vote_k]
        near = near[np.argsort(-sims[i, near])]
        votes = [(gallery.types[j], float(sims[i, j])) for j in near]
        classifier = (
            {str(type_vocab[j]): float(clf[i, j]) for j in range(len(type_vocab))}
            if clf is not None
            else {}
        )
        th = thresholds[i] if thresholds is not None else None
        al = alphas[i] if alphas is not None else None
        pred = predict_category(
            classifier,
            votes,
            alpha=alpha if al is None else al,
            threshold=threshold if th is None else th,
        )
        row = sims[i]
        if pred.restrict and pred.label is not None:
            allowed = types == pred.label
            if allowed.any():
                row = np.where(allowed, row, -np.inf)
        depth = min(rr.depth, int(np.isfinite(row).sum()))
        cand = np.argpartition(-row, depth - 1)[:depth]
        cand = cand[np.argsort(-row[cand], kind="stable")]
        qdist = query_distribution(
            {
                a: {
                    v: float(p) for v, p in zip(model.attribute_vocab[a], qprobs[a][i], strict=True)
                }
                for a in RERANK_ATTRIBUTES
                if a in qprobs
            },
            (attributes[i] if attributes is not None else None) or RERANK_ATTRIBUTES,
        )
        scored = rerank(
            [(str(j), float(row[j]), gallery.attr_prob[j]) for j in cand], qdist, rr.floors()
        )
        tops.append([int(doc) for doc, _, _ in scored[:k]])
        cats.append(pred.label)
    return Ranked(tops, cats)
