"""Retrieval metrics of the joint-space evaluation (engine.train.metrics) against hand-computed
cases and against the photo-search re-rank the service runs."""

from __future__ import annotations

import numpy as np
import pytest

from engine.search.attribute_rerank import AttributeRerank, rerank
from engine.train import metrics as M


def test_ceiling_by_hand() -> None:
    # a: 2 others of its label (2/3 at k=3), b: 0 others, c: 3 others (capped at k=3)
    labels = ["a", "a", "a", "b", "c", "c", "c", "c"]
    expected = (3 * (2 / 3) + 0.0 + 4 * 1.0) / 8
    assert M.label_precision_ceiling(labels, k=3) == pytest.approx(expected)


def _unit(rows: list[list[float]]) -> np.ndarray:
    x = np.asarray(rows, dtype=np.float32)
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_rerank_fixes_a_wrong_colour_neighbour() -> None:
    # 0 and 1 are red, 2 is blue but closest to 0 by cosine
    emb = _unit([[1.0, 0.0], [0.8, 0.6], [1.0, 0.05]])
    labels = ["shirt|red", "shirt|red", "shirt|blue"]
    colour = np.asarray([[0.9, 0.1], [0.8, 0.2], [0.1, 0.9]], dtype=np.float32)
    probs = {"base_colour": colour}
    floors = {"base_colour": 0.1}
    plain = M.label_precision_at_k(emb, labels, k=1)
    reranked = M.attribute_reranked_precision_at_k(
        emb, emb, probs, probs, labels, floors, depth=2, k=1, query_top=2, gallery_top=2
    )
    assert plain == pytest.approx(0.0)  # by cosine: 0 -> 2, 1 -> 2, 2 -> 0
    assert reranked == pytest.approx(2 / 3)  # 0 -> 1 and 1 -> 0 now; 2 (blue) has no match
    # floor 1: the factor is 1 everywhere and the ranking is the cosine one
    same = M.attribute_reranked_precision_at_k(
        emb, emb, probs, probs, labels, {"base_colour": 1.0}, depth=2, k=1
    )
    assert same == pytest.approx(plain)


def test_matches_the_service_rerank_on_random_data() -> None:
    rng = np.random.default_rng(0)
    n, k, depth = 40, 5, 12
    emb = rng.normal(size=(n, 8)).astype(np.float32)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    vocab = {
        "base_colour": [f"c{i}" for i in range(6)],
        "article_type": [f"t{i}" for i in range(4)],
    }
    ti = rng.integers(4, size=n)
    ci = rng.integers(6, size=n)
    labels = [f"t{t}|c{c}" for t, c in zip(ti, ci, strict=True)]
    # noisy predictions that lean to the true values (so the re-rank has something to use)
    probs = {}
    for a, truth in (("article_type", ti), ("base_colour", ci)):
        p = rng.dirichlet(np.ones(len(vocab[a])) * 0.5, size=n)
        p[np.arange(n), truth] += 1.0
        probs[a] = (p / p.sum(axis=1, keepdims=True)).astype(np.float32)
    rr = AttributeRerank()
    got = M.attribute_reranked_precision_at_k(
        emb, emb, probs, probs, labels, rr.floors(), depth=depth, k=k, query_top=5, gallery_top=3
    )

    def top(p: np.ndarray, names: list[str], m: int) -> dict[str, float]:
        order = np.argsort(-p, kind="stable")[:m]
        return {names[j]: float(p[j]) for j in order}

    def dist(i: int, m: int) -> dict[str, dict[str, float]]:
        return {a: top(probs[a][i], vocab[a], m) for a in vocab}

    sims = emb @ emb.T
    hits = []
    for i in range(n):
        order = [j for j in np.argsort(-sims[i], kind="stable") if j != i][:depth]
        ranked = rerank(
            [(str(j), float(sims[i, j]), dist(j, 3)) for j in order], dist(i, 5), rr.floors()
        )
        hits.append(np.mean([labels[int(d)] == labels[i] for d, _, _ in ranked[:k]]))
    # and the re-rank changed something on this data (else the comparison proves little)
    assert got != pytest.approx(M.label_precision_at_k(emb, labels, k=k))
    assert got == pytest.approx(float(np.mean(hits)))
