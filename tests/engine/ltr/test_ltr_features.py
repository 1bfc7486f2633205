"""LTR feature extraction: documented list, deterministic, NaN-safe (issue 8)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import load_catalog
from engine.ltr.features import (
    DEFAULT_FILL,
    FEATURE_SET_VERSION,
    FEATURES,
    MISSING_NAMES,
    N_VALUES,
    VALUE_NAMES,
    Candidate,
    doc_from_product,
    extract_features,
    fit_fill_values,
    impute,
)

SAMPLE = Path(__file__).resolve().parents[3] / "sample" / "catalog.jsonl"
REF = 1_700_000_000.0
DAY = 86400.0


def col(name: str) -> int:
    return FEATURES.index(name)


def full_candidate(doc_id: str = "a", score: float = 4.0) -> Candidate:
    doc = {
        "price": 1000.0,
        "discounted_price": 750.0,
        "rating": 4.5,
        "sales": 99,
        "clicks": 9,
        "popularity": 0,
        "in_stock": True,
        "added_at": int(REF - 10 * DAY),
        "predicted_category_confidence": 0.8,
    }
    signals = {
        "bm25": 7.5,
        "image_sim": 0.9,
        "text_sim": 0.8,
        "joint_sim": 0.85,
        "category_conf": 0.7,
        "soft_attr": 0.6,
    }
    return Candidate(doc_id, score, doc, signals)


def test_feature_list_is_documented_and_versioned() -> None:
    assert FEATURE_SET_VERSION.startswith("ltr-features-v")
    assert len(set(FEATURES)) == len(FEATURES) == 2 * N_VALUES
    assert tuple(f"{n}_missing" for n in VALUE_NAMES) == MISSING_NAMES
    import engine.ltr.features as mod

    for name in VALUE_NAMES:  # every feature appears in the module's documentation table
        assert f"\n{name} " in mod.__doc__


def test_values_of_a_complete_candidate() -> None:
    x = extract_features([full_candidate()], REF)
    row = x[0]
    assert row[col("relevance_norm")] == 1.0
    assert row[col("bm25")] == 7.5
    assert row[col("image_sim")] == 0.9
    assert row[col("log_price")] == pytest.approx(math.log10(751.0))  # the price paid
    assert row[col("discount_pct")] == pytest.approx(25.0)
    assert row[col("rating")] == 4.5
    assert row[col("recency_days")] == pytest.approx(10.0)
    assert row[col("log_sales")] == pytest.approx(2.0)
    assert row[col("log_clicks")] == pytest.approx(1.0)
    assert row[col("log_popularity")] == 0.0
    assert row[col("in_stock")] == 1.0
    assert row[col("doc_category_conf")] == 0.8
    assert row[col("rel_log_price")] == 0.0  # the only price of the list is its median
    assert not row[N_VALUES:].any()  # nothing missing


def test_extraction_is_deterministic_and_order_equivariant() -> None:
    cands = [full_candidate("a", 4.0), full_candidate("b", 2.0), Candidate("c", 1.0)]
    x1 = extract_features(cands, REF)
    x2 = extract_features(list(cands), REF)
    np.testing.assert_array_equal(x1, x2)  # NaNs in the same places too
    perm = [2, 0, 1]
    xp = extract_features([cands[i] for i in perm], REF)
    np.testing.assert_array_equal(xp, x1[perm])


def test_missing_business_fields_do_not_crash() -> None:
    bare = Candidate("x", float("nan"))
    x = extract_features([bare, Candidate("y", 0.0, {"title": "no business data"})], REF)
    assert x.shape == (2, len(FEATURES))
    assert np.isnan(x[:, :N_VALUES]).all()
    assert (x[:, N_VALUES:] == 1.0).all()
    filled = impute(x)
    assert np.isfinite(filled).all()
    assert filled[0, col("log_price")] == DEFAULT_FILL["log_price"]


@pytest.mark.parametrize(
    ("doc", "name", "expected"),
    [
        ({"price": "not a number"}, "log_price", math.nan),
        ({"price": -5}, "log_price", math.nan),
        ({"price": float("inf")}, "log_price", math.nan),
        ({"rating": True}, "rating", math.nan),
        ({"rating": "4"}, "rating", 4.0),
        ({"in_stock": "false"}, "in_stock", 0.0),
        ({"in_stock": None}, "in_stock", math.nan),
        ({"discount_pct": 30}, "discount_pct", 30.0),
        ({"discount_pct": 250}, "discount_pct", 100.0),
        ({"price": 0, "discounted_price": 0}, "discount_pct", math.nan),
        ({"added_at": REF + 5 * DAY}, "recency_days", 0.0),  # added "in the future"
        ({"added_at": "2023-11-04T22:13:20+00:00"}, "recency_days", 10.0),
        ({"added_at": "yesterday"}, "recency_days", math.nan),
        ({"sales": -3}, "log_sales", math.nan),
    ],
)
def test_odd_values(doc: dict, name: str, expected: float) -> None:
    value = extract_features([Candidate("a", 1.0, doc)], REF)[0, col(name)]
    if math.isnan(expected):
        assert math.isnan(value)
        assert extract_features([Candidate("a", 1.0, doc)], REF)[0, col(name + "_missing")] == 1
    else:
        assert value == pytest.approx(expected)


def test_list_features() -> None:
    cands = [
        Candidate("a", 2.0, {"price": 999}),
        Candidate("b", 1.0, {"price": 99}),
        Candidate("c", 0.0, {"price": 9}),
    ]
    x = extract_features(cands, REF)
    np.testing.assert_allclose(x[:, col("relevance_norm")], [1.0, 0.5, 0.0])
    np.testing.assert_allclose(x[:, col("rel_log_price")], [1.0, 0.0, -1.0])
    zero = extract_features([Candidate("a", 0.0), Candidate("b", 0.0)], REF)
    assert (zero[:, col("relevance_norm_missing")] == 1).all()


def test_fill_values_are_medians_with_defaults() -> None:
    x = extract_features([Candidate("a", 1.0, {"rating": r}) for r in (1.0, 2.0, 9.0)], REF)
    fill = fit_fill_values(x[:, :N_VALUES])
    assert fill["rating"] == 2.0
    assert fill["log_sales"] == DEFAULT_FILL["log_sales"]  # never observed


def test_catalog_rows_become_documents() -> None:
    products = load_catalog(SAMPLE)[:50]
    cands = [Candidate(p.id, 1.0, doc_from_product(p)) for p in products]
    x = extract_features(cands, REF)
    assert not np.isnan(x[:, col("log_price")]).any()
    assert np.isnan(x[:, col("log_sales")]).all()  # the sample has no sales figures
