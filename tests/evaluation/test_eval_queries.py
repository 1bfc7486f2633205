"""Query generators: the relevance scheme by hand, determinism under a fixed seed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.catalog import Product, load_catalog
from engine.errors import InvalidInput
from evaluation.queries import (
    attribute_gain,
    attribute_queries,
    compose_queries,
    render_attribute_text,
    text_gain,
    visual_gain,
)

ROOT = Path(__file__).resolve().parents[2]
SAMPLE = load_catalog(ROOT / "sample" / "catalog.jsonl")


def prod(pid: str, **kw: Any) -> Product:
    pattern = kw.pop("pattern", None)
    attrs = {"Pattern": pattern} if pattern else {}
    return Product.model_validate({"id": pid, "title": f"item {pid}", "attributes": attrs, **kw})


TS = {"article_type": "Tshirts", "sub_category": "Topwear"}


def test_attribute_gain_scheme() -> None:
    q = {"article_type": "Tshirts", "colour": "Black", "pattern": "Striped", "gender": "Men"}
    q_sub = {**q, "sub_category": "Topwear"}
    exact = prod("1", base_colour="Black", gender="Men", pattern="Striped", **TS)
    unisex = prod("2", base_colour="black", gender="Unisex", pattern="striped", **TS)
    solid = prod("3", base_colour="Black", gender="Men", pattern="Solid", **TS)
    no_pattern = prod("4", base_colour="Black", gender="Men", **TS)
    women = prod("5", base_colour="Black", gender="Women", pattern="Striped", **TS)
    white = prod("6", base_colour="White", gender="Men", pattern="Striped", **TS)
    shirt = prod(
        "7",
        article_type="Shirts",
        sub_category="Topwear",
        base_colour="Black",
        gender="Men",
        pattern="Striped",
    )
    jeans = prod("8", article_type="Jeans", sub_category="Bottomwear", base_colour="Black")
    navy = prod("9", base_colour="Navy Blue", gender="Men", pattern="Striped", **TS)
    assert attribute_gain(exact, **q) == 3
    assert attribute_gain(unisex, **q) == 3
    assert attribute_gain(solid, **q) == 2
    assert attribute_gain(no_pattern, **q) == 2
    assert attribute_gain(women, **q) == 1
    assert attribute_gain(white, **q) == 1
    assert attribute_gain(shirt, **q) == 0  # same sub_category only counts when given
    assert attribute_gain(shirt, **q_sub) == 1
    assert attribute_gain(jeans, **q_sub) == 0
    assert attribute_gain(navy, article_type="Tshirts", colour="Blue") == 1  # Navy Blue != Blue
    # attributes the query does not name always match
    assert attribute_gain(women, article_type="Tshirts", colour="Black") == 3
    # placeholder colours are unknown
    na = prod("10", base_colour="NA", **TS)
    assert attribute_gain(na, article_type="Tshirts", colour="NA") == 1


def test_render_attribute_text() -> None:
    assert (
        render_attribute_text("Tshirts", "Black", "Striped", "Men") == "black striped tshirts men"
    )
    assert render_attribute_text("Tops", "Red", None, "Women", 1) == "women's red tops"
    assert render_attribute_text("Casual Shoes", "Navy Blue", None, None, 2) == (
        "casual shoes in navy blue"
    )
    assert render_attribute_text("Jeans", "Blue", "Solid", "Men", 2) == (
        "solid jeans in blue for men"
    )


def test_attribute_queries_on_sample_are_deterministic() -> None:
    a = attribute_queries(SAMPLE, n=40, seed=5)
    b = attribute_queries(list(reversed(SAMPLE)), n=40, seed=5)
    c = attribute_queries(SAMPLE, n=40, seed=6)
    assert [q.to_dict() for q in a] == [q.to_dict() for q in b]
    assert [q.text for q in a] != [q.text for q in c]
    assert len(a) == 40
    assert len({q.qid for q in a}) == 40
    assert len({(q.article_type, q.colour, q.pattern, q.gender) for q in a}) == 40
    by_id = {p.id: p for p in SAMPLE}
    for q in a:
        assert q.relevance[q.source_id] == 3
        assert q.relevant(3) and all(g in (1, 2, 3) for g in q.relevance.values())
        for pid, g in q.relevance.items():
            assert (
                attribute_gain(
                    by_id[pid],
                    q.article_type,
                    q.colour,
                    q.pattern,
                    q.gender,
                    by_id[q.source_id].sub_category,
                )
                == g
            )
    # the per-type cap (10 % of 40 = 4)
    types = [q.article_type for q in a]
    assert max(types.count(t) for t in set(types)) <= 4


def test_attribute_queries_min_exact_and_empty() -> None:
    qs = attribute_queries(SAMPLE, n=500, seed=1, min_exact=2, max_share_per_type=None)
    assert qs and all(len(q.relevant(3)) >= 2 for q in qs)
    assert attribute_queries([], n=10) == []
    with pytest.raises(InvalidInput):
        attribute_queries(SAMPLE, n=-1)


def test_visual_and_text_gain() -> None:
    src = prod("s", base_colour="Black", gender="Men", pattern="Striped", **TS)
    assert visual_gain(src, src) == 0
    assert (
        visual_gain(src, prod("a", base_colour="Red", gender="Men", pattern="Striped", **TS)) == 3
    )
    assert visual_gain(src, prod("b", base_colour="Red", gender="Unisex", **TS)) == 2
    assert visual_gain(src, prod("c", base_colour="Red", gender="Women", **TS)) == 1
    assert visual_gain(src, prod("d", article_type="Shirts", gender="Men")) == 0
    assert text_gain("Red", prod("e", base_colour="Red")) == 2
    assert text_gain("red", prod("f", base_colour="Blue", colour1="Red")) == 1
    assert text_gain("Red", prod("g", base_colour="Blue")) == 0


def test_compose_queries_on_sample() -> None:
    a = compose_queries(SAMPLE, n=30, seed=2)
    b = compose_queries(list(reversed(SAMPLE)), n=30, seed=2)
    assert [q.to_dict() for q in a] == [q.to_dict() for q in b]
    assert len(a) == 30
    by_id = {p.id: p for p in SAMPLE}
    for q in a:
        src = by_id[q.source_id]
        assert q.target_colour.lower() != (src.base_colour or "").lower()
        assert q.target_colour.lower() in q.text
        assert q.source_id not in q.visual_relevance and q.source_id not in q.text_relevance
        # an item of the same type in the target colour exists
        assert q.both_relevant()
        for pid in q.both_relevant():
            assert by_id[pid].article_type == src.article_type
    assert [q.text for q in compose_queries(SAMPLE, n=30, seed=3)] != [q.text for q in a]
