"""Pure attribute-aware re-rank of photo search results."""

from __future__ import annotations

import pytest

from engine.search.attribute_rerank import (
    AttributeRerank,
    agreement,
    attribute_factor,
    query_distribution,
    rerank,
)

FLOORS = AttributeRerank().floors()


def test_query_distribution_slugs_and_keeps_top_values() -> None:
    probs = {"base_colour": {"Navy Blue": 0.6, "Blue": 0.3, "Black": 0.1}, "usage": {"Casual": 1.0}}
    got = query_distribution(probs, ("base_colour", "article_type"), top_k=2)
    assert got == {"base_colour": {"navy_blue": 0.6, "blue": 0.3}}


def test_factor_is_one_for_certain_agreement_and_the_floor_for_none() -> None:
    q = {"base_colour": {"red": 1.0}, "article_type": {"dresses": 1.0}}
    same = {"base_colour": {"red": 1.0}, "article_type": {"dresses": 1.0}}
    assert attribute_factor(q, same, FLOORS) == pytest.approx(1.0)
    other = {"base_colour": {"blue": 1.0}, "article_type": {"dresses": 1.0}}
    assert attribute_factor(q, other, FLOORS) == pytest.approx(0.1)
    assert attribute_factor(q, None, FLOORS) == pytest.approx(0.1 * 0.2)
    assert attribute_factor({}, other, FLOORS) == 1.0  # nothing predicted: no change
    assert agreement({"red": 0.5, "blue": 0.5}, {"red": 0.8}) == pytest.approx(0.4)


def test_rerank_moves_same_colour_items_up_but_keeps_cosine_order_among_equals() -> None:
    q = {"base_colour": {"red": 0.9, "pink": 0.1}}
    hits = [
        ("blue1", 0.95, {"base_colour": {"blue": 0.9}}),
        ("red1", 0.90, {"base_colour": {"red": 0.8}}),
        ("red2", 0.85, {"base_colour": {"red": 0.8}}),
        ("pink", 0.93, {"base_colour": {"pink": 0.9}}),
    ]
    order = [doc for doc, _, _ in rerank(hits, q, FLOORS)]
    assert order == ["red1", "red2", "pink", "blue1"]
    scores = [s for _, s, _ in rerank(hits, q, FLOORS)]
    assert scores == sorted(scores, reverse=True)
