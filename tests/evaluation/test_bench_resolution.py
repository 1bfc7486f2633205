"""The pure parts of evaluation.bench_resolution: the size choice and precision@10."""

from __future__ import annotations

import numpy as np
import pytest

from evaluation.bench_resolution import choose_size, precision_at_10


def _row(size: int, t: float, c: float, p: float | None) -> dict:
    return {"size": size, "type_top1": t, "colour_top1": c, "image_p_at_10": p}


def test_the_smallest_size_within_tolerance_of_the_largest_is_chosen() -> None:
    rows = [_row(224, 0.80, 0.81, 0.40), _row(192, 0.795, 0.805, 0.395), _row(160, 0.78, 0.81, 0.4)]
    assert choose_size(rows, 0.01) == 192  # 160 loses 2 points of type
    assert choose_size(rows, 0.03) == 160
    assert choose_size(rows, 0.0) == 224


def test_a_missing_measure_is_not_compared_and_no_rows_is_an_error() -> None:
    assert choose_size([_row(224, 0.8, 0.8, None), _row(160, 0.8, 0.8, 0.1)], 0.01) == 160
    with pytest.raises(ValueError):
        choose_size([], 0.01)


def test_precision_at_10_counts_same_label_neighbours() -> None:
    rng = np.random.default_rng(0)
    a = rng.normal(size=(11, 4)) * 0.01 + np.array([1, 0, 0, 0])
    b = rng.normal(size=(11, 4)) * 0.01 + np.array([0, 1, 0, 0])
    x = np.concatenate([a, b])
    assert precision_at_10(x, ["a"] * 11 + ["b"] * 11) == 1.0
    assert precision_at_10(x, (["a", "b"] * 11)) < 0.7
