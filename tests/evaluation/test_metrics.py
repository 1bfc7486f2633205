"""Every metric against hand-computed cases, including edge cases."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from evaluation import metrics as m

LOG2_3 = math.log2(3)


# --------------------------------------------------------------------------- nDCG


def test_ndcg_graded_by_hand() -> None:
    # DCG = (2^3-1)/1 + 0 + (2^2-1)/log2(4) = 7 + 1.5
    # IDCG over all judged items {3, 2, 1} = 7 + 3/log2(3) + 1/2
    rel = {"a": 3, "b": 0, "c": 2, "d": 1}
    expected = 8.5 / (7 + 3 / LOG2_3 + 0.5)
    assert m.ndcg_at_k(["a", "b", "c"], rel, k=3) == pytest.approx(expected)


def test_ndcg_linear_gain() -> None:
    rel = {"a": 3, "c": 2, "d": 1}
    expected = (3 + 2 / 2) / (3 + 2 / LOG2_3 + 1 / 2)
    assert m.ndcg_at_k(["a", "b", "c"], rel, k=3, gain="linear") == pytest.approx(expected)


def test_ndcg_perfect_and_worst() -> None:
    rel = {"a": 2, "b": 1}
    assert m.ndcg_at_k(["a", "b", "x"], rel, k=10) == pytest.approx(1.0)
    assert m.ndcg_at_k(["x", "y"], rel, k=10) == 0.0


def test_ndcg_no_relevant_items_is_zero() -> None:
    assert m.ndcg_at_k(["a", "b"], {}, k=10) == 0.0
    assert m.ndcg_at_k(["a", "b"], {"a": 0}, k=10) == 0.0


def test_ndcg_k_larger_than_list() -> None:
    # one of two relevant found at rank 1; ideal has both
    expected = 1.0 / (1.0 + 1.0 / LOG2_3)
    assert m.ndcg_at_k(["a"], {"a": 1, "b": 1}, k=100) == pytest.approx(expected)


def test_ndcg_ties_in_gains_any_order_is_ideal() -> None:
    rel = {"a": 2, "b": 2, "c": 1}
    assert m.ndcg_at_k(["b", "a", "c"], rel, k=3) == pytest.approx(1.0)
    assert m.ndcg_at_k(["a", "b", "c"], rel, k=3) == pytest.approx(1.0)


def test_ndcg_cut_at_k() -> None:
    rel = {"a": 1, "b": 1}
    # relevant at rank 3 is outside k=2
    assert m.ndcg_at_k(["x", "y", "a"], rel, k=2) == 0.0
    # IDCG@1 counts only the best item
    assert m.ndcg_at_k(["a"], rel, k=1) == pytest.approx(1.0)


def test_ndcg_duplicates_count_once() -> None:
    rel = {"a": 1, "b": 1}
    once = m.ndcg_at_k(["a", "x"], rel, k=2)
    assert m.ndcg_at_k(["a", "a"], rel, k=2) == pytest.approx(once)


def test_ndcg_from_gain_lists() -> None:
    expected = (1 + 3 / LOG2_3) / (3 + 1 / LOG2_3)
    assert m.ndcg_at_k([1, 2], k=2) == pytest.approx(expected)
    assert m.ndcg_at_k_from_gains([1, 2], k=2) == pytest.approx(expected)
    # with an explicit ideal (a relevant item the list missed)
    ideal = [2, 2, 1]
    exp2 = (1 + 3 / LOG2_3) / (3 + 3 / LOG2_3)
    assert m.ndcg_at_k_from_gains([1, 2], k=2, ideal_gains=ideal) == pytest.approx(exp2)
    assert m.ndcg_at_k([0, 0, 0], k=3) == 0.0


def test_ndcg_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        m.ndcg_at_k(["a"], {"a": 1}, k=0)
    with pytest.raises(ValueError):
        m.ndcg_at_k(["a"], {"a": -1}, k=1)


# --------------------------------------------------------------------------- set-based


def test_recall_precision_by_hand() -> None:
    ranked = ["a", "x", "b", "y"]
    relevant = {"a", "b", "c"}
    assert m.recall_at_k(ranked, relevant, 2) == pytest.approx(1 / 3)
    assert m.recall_at_k(ranked, relevant, 4) == pytest.approx(2 / 3)
    assert m.precision_at_k(ranked, relevant, 2) == pytest.approx(1 / 2)
    assert m.precision_at_k(ranked, relevant, 1) == 1.0
    assert m.hit_rate_at_k(ranked, relevant, 1) == 1.0
    assert m.hit_rate_at_k(["x"], relevant, 5) == 0.0


def test_recall_precision_k_larger_than_list() -> None:
    assert m.recall_at_k(["a", "b"], {"a", "b"}, 10) == 1.0
    # a short list is not padded: 2 hits out of k=10 positions
    assert m.precision_at_k(["a", "b"], {"a", "b"}, 10) == pytest.approx(0.2)


def test_recall_precision_edge_cases() -> None:
    assert m.recall_at_k(["a"], set(), 10) == 0.0
    assert m.precision_at_k([], {"a"}, 5) == 0.0
    assert m.recall_at_k(["a", "a", "a"], {"a", "b"}, 3) == pytest.approx(0.5)
    assert m.precision_at_k(["a", "a"], {"a"}, 2) == pytest.approx(0.5)
    with pytest.raises(ValueError):
        m.recall_at_k(["a"], {"a"}, 0)


def test_reciprocal_rank_and_mrr() -> None:
    assert m.reciprocal_rank(["x", "a"], {"a"}) == 0.5
    assert m.reciprocal_rank(["x", "a"], {"a"}, k=1) == 0.0
    assert m.reciprocal_rank([], {"a"}) == 0.0
    value = m.mrr([["x", "a"], ["a"], ["x", "y"]], [{"a"}, {"a"}, {"a"}])
    assert value == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    with pytest.raises(ValueError):
        m.mrr([], [])
    with pytest.raises(ValueError):
        m.mrr([["a"]], [{"a"}, {"b"}])


def test_average_precision_by_hand() -> None:
    ranked = ["a", "x", "b"]
    relevant = {"a", "b", "c"}
    assert m.average_precision(ranked, relevant) == pytest.approx((1 + 2 / 3) / 3)
    assert m.average_precision(ranked, relevant, k=2) == pytest.approx(1 / 2)
    assert m.average_precision(ranked, set()) == 0.0
    assert m.average_precision(["a", "b"], {"a", "b"}) == 1.0
    value = m.mean_average_precision([ranked, ["b"]], [relevant, {"b"}])
    assert value == pytest.approx(((1 + 2 / 3) / 3 + 1.0) / 2)


def test_recall_curve() -> None:
    curve = m.recall_curve(
        [["a", "x", "b"], ["y", "c"], ["z"]], [{"a", "b"}, {"c"}, set()], [1, 2, 3]
    )
    # the query without relevant items is left out
    assert curve == {1: pytest.approx(0.25), 2: pytest.approx(0.75), 3: pytest.approx(1.0)}
    with pytest.raises(ValueError):
        m.recall_curve([["a"]], [set()], [1])


def test_approx_recall() -> None:
    assert m.approx_recall(["a", "b", "c"], ["a", "c", "d"], k=3) == pytest.approx(2 / 3)
    assert m.approx_recall(["a", "b", "c", "d"], ["d", "c", "b", "a"], k=2) == 0.0
    assert m.approx_recall(["a"], ["a", "b"], k=10) == pytest.approx(0.5)
    assert m.approx_recall(["a", "b"], ["a"], k=10) == 1.0  # exact list shorter than k
    assert m.approx_recall(["a"], [], k=10) == 1.0


# --------------------------------------------------------------------------- compose


def test_geometric_mean() -> None:
    assert m.geometric_mean([0.25, 1.0]) == pytest.approx(0.5)
    assert m.geometric_mean([0.0, 1.0]) == 0.0
    assert m.geometric_mean([2.0, 8.0, 4.0]) == pytest.approx(4.0)
    with pytest.raises(ValueError):
        m.geometric_mean([])
    with pytest.raises(ValueError):
        m.geometric_mean([-1.0, 1.0])


def test_compose_ndcg_and_summary() -> None:
    visual = {"a": 1, "b": 1}
    text = {"b": 2, "c": 2}
    got = m.compose_ndcg(["b", "a"], visual, text, k=2)
    assert got["visual"] == pytest.approx(1.0)
    t = 3 / (3 + 3 / LOG2_3)
    assert got["text"] == pytest.approx(t)
    assert got["mm"] == pytest.approx(math.sqrt(t))
    assert m.compose_ndcg(["a"], visual, text, k=2)["mm"] == 0.0
    s = m.compose_summary([1.0, 0.5], [0.25, 0.25])
    assert s["visual"] == pytest.approx(0.75)
    assert s["text"] == pytest.approx(0.25)
    assert s["mm"] == pytest.approx(math.sqrt(0.75 * 0.25))


# --------------------------------------------------------------------------- classification


def test_fitb_accuracy_with_ties() -> None:
    scores = [[0.9, 0.1, 0.2, 0.3], [0.5, 0.5, 0.1, 0.1], [0.0, 1.0, 0.0, 0.0]]
    # right, tie of two including the answer (1/2), wrong
    assert m.fitb_accuracy(scores, [0, 1, 0]) == pytest.approx((1 + 0.5 + 0) / 3)
    # all tied over four choices: expected accuracy of random guessing
    assert m.fitb_accuracy([[1.0, 1.0, 1.0, 1.0]], [2]) == pytest.approx(0.25)


def test_fitb_accuracy_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        m.fitb_accuracy([], [])
    with pytest.raises(ValueError):
        m.fitb_accuracy([[0.1, 0.2]], [2])
    with pytest.raises(ValueError):
        m.fitb_accuracy([[0.1, float("nan")]], [0])


def test_accuracy() -> None:
    assert m.accuracy(["a", "b", "c"], ["a", "x", "c"]) == pytest.approx(2 / 3)
    with pytest.raises(ValueError):
        m.accuracy([], [])


def test_roc_auc_by_hand_with_ties() -> None:
    # pos {0.9, 0.5} vs neg {0.1, 0.5}: 1 + 1 + 1 + 0.5 (tie) over 4 pairs
    assert m.roc_auc([1, 0, 1, 0], [0.9, 0.1, 0.5, 0.5]) == pytest.approx(0.875)
    assert m.roc_auc([1, 1, 0, 0], [0.3, 0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert m.roc_auc([True, False], [1.0, 0.0]) == 1.0
    assert m.roc_auc([True, False], [0.0, 1.0]) == 0.0


def test_roc_auc_matches_pairwise_definition() -> None:
    rng = random.Random(7)
    labels = [rng.random() < 0.4 for _ in range(200)]
    labels[0], labels[1] = True, False
    scores = [round(rng.random(), 1) for _ in range(200)]  # many ties
    pos = [s for s, y in zip(scores, labels, strict=True) if y]
    neg = [s for s, y in zip(scores, labels, strict=True) if not y]
    pairs = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    assert m.roc_auc(labels, scores) == pytest.approx(pairs / (len(pos) * len(neg)))


def test_roc_auc_needs_both_classes() -> None:
    with pytest.raises(ValueError):
        m.roc_auc([1, 1], [0.1, 0.2])
    with pytest.raises(ValueError):
        m.roc_auc([1, 0], [0.1])


# --------------------------------------------------------------------------- latency


def test_latency_summary() -> None:
    samples = [float(i) for i in range(1, 101)]
    s = m.latency_summary(samples)
    assert s["p50_ms"] == pytest.approx(50.5)
    assert s["p99_ms"] == pytest.approx(99.01)
    assert s["mean_ms"] == pytest.approx(50.5)
    assert s["max_ms"] == 100.0
    assert s["n"] == 100
    one = m.latency_summary([3.0])
    assert one["p50_ms"] == one["p99_ms"] == 3.0


def test_latency_summary_rejects_bad_samples() -> None:
    with pytest.raises(ValueError):
        m.latency_summary([])
    with pytest.raises(ValueError):
        m.latency_summary([1.0, -2.0])
    with pytest.raises(ValueError):
        m.latency_summary([1.0, float("inf")])
    with pytest.raises(ValueError):
        m.percentile([1.0], 101)


def test_timed_ms_uses_the_clock() -> None:
    ticks = iter([1.0, 1.25])
    assert m.timed_ms(lambda: None, clock=lambda: next(ticks)) == pytest.approx(250.0)


def test_mean() -> None:
    assert m.mean([1, 2, 3]) == 2.0
    assert m.mean(np.array([0.5, 1.5])) == 1.0
    with pytest.raises(ValueError):
        m.mean([])
