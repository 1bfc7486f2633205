"""Query generators: the relevance scheme by hand, determinism under a fixed seed."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from engine.catalog import Product, load_catalog
from engine.errors import InvalidInput
from evaluation.queries import (
    Look,
    attribute_gain,
    attribute_queries,
    compatibility_examples,
    compose_queries,
    default_slot,
    fitb_questions,
    item_look_counts,
    load_looks,
    look_partners,
    parse_looks,
    render_attribute_text,
    text_gain,
    visual_gain,
)

ROOT = Path(__file__).resolve().parent.parent
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


def test_default_slot() -> None:
    assert default_slot(prod("1", article_type="Tshirts", sub_category="Topwear")) == "top"
    assert default_slot(prod("2", article_type="Jackets", sub_category="Topwear")) == "outerwear"
    assert default_slot(prod("3", article_type="Dresses", sub_category="Dress")) == "dress"
    assert default_slot(prod("4", article_type="Heels", sub_category="Shoes")) == "shoes"
    assert default_slot(prod("5", article_type="Handbags", sub_category="Bags")) == "bag"
    assert default_slot(prod("6", article_type="Watches", sub_category="Watches")) == "watch"
    assert default_slot(prod("7", article_type="Briefs", sub_category="Innerwear")) is None
    assert default_slot(prod("8")) is None


def _looks_pool() -> tuple[list[Look], list[Product]]:
    products = []
    for slot, (atype, sub) in {
        "top": ("Tshirts", "Topwear"),
        "bottom": ("Jeans", "Bottomwear"),
        "shoes": ("Casual Shoes", "Shoes"),
    }.items():
        for i in range(6):
            products.append(prod(f"{slot}{i}", article_type=atype, sub_category=sub))
    looks = [Look(f"L{i}", (f"top{i}", f"bottom{i}", f"shoes{i}")) for i in range(4)]
    return looks, products


def test_fitb_questions() -> None:
    looks, products = _looks_pool()
    qs = fitb_questions(looks, products, n_choices=4, seed=9)
    again = fitb_questions(looks, list(reversed(products)), n_choices=4, seed=9)
    assert [q.to_dict() for q in qs] == [q.to_dict() for q in again]
    assert len(qs) == 4
    slot_of = {p.id: default_slot(p) for p in products}
    for q, look in zip(qs, looks, strict=True):
        assert len(q.choices) == len(set(q.choices)) == 4
        assert q.answer in look.items and q.answer not in q.context
        assert set(q.context) | {q.answer} == set(look.items)
        negatives = [c for c in q.choices if c != q.answer]
        assert all(slot_of[c] == q.slot == slot_of[q.answer] for c in negatives)
        assert not set(negatives) & set(look.items)
    seeds = {tuple(q.choices for q in fitb_questions(looks, products, seed=s)) for s in range(5)}
    assert len(seeds) > 1
    assert len(fitb_questions(looks, products, seed=9, limit=2)) == 2


def test_fitb_skips_looks_without_enough_negatives() -> None:
    looks, products = _looks_pool()
    # only 5 other shoes/tops/bottoms exist: 7 choices need 6 negatives
    assert fitb_questions(looks, products, n_choices=7) == []
    # items unknown to the catalog are ignored; a look with one known item has no question
    assert fitb_questions([Look("x", ("top0", "zzz"))], products) == []
    with pytest.raises(InvalidInput):
        fitb_questions(looks, products, n_choices=1)


def test_compatibility_examples() -> None:
    looks, products = _looks_pool()
    ex = compatibility_examples(looks, products, seed=1, negatives_per_look=2)
    assert len(ex) == 12 and sum(e.label for e in ex) == 4
    slot_of = {p.id: default_slot(p) for p in products}
    for e in ex:
        if e.label == 0:
            orig = next(lk for lk in looks if e.look_id.startswith(lk.look_id + "~"))
            assert [slot_of[i] for i in e.items] == [slot_of[i] for i in orig.items]
            assert not set(e.items) & set(orig.items)
    assert ex == compatibility_examples(looks, products, seed=1, negatives_per_look=2)


def test_look_helpers_and_loading(tmp_path: Path) -> None:
    looks = [Look("a", ("1", "2", "3")), Look("b", ("1", "4"))]
    assert look_partners(looks)["1"] == {"2", "3", "4"}
    assert item_look_counts(looks)["1"] == 2
    data = [
        ["1", "2"],
        {"id": "x", "items": [{"id": 3, "slot": "top"}, "4"]},
        {"look_id": "y", "items": ["5", "6"], "slots": ["top", "shoes"]},
    ]
    parsed = parse_looks({"looks": data})
    assert parsed[0] == Look("look-0", ("1", "2"), (None, None))
    assert parsed[1] == Look("x", ("3", "4"), ("top", None))
    assert parsed[2].slots == ("top", "shoes")
    (tmp_path / "looks.json").write_text(json.dumps(data))
    (tmp_path / "looks.jsonl").write_text("\n".join(json.dumps(d) for d in data) + "\n")
    assert load_looks(tmp_path / "looks.json") == parsed
    assert load_looks(tmp_path / "looks.jsonl") == parsed
    with pytest.raises(InvalidInput):
        parse_looks({"items": []})
    with pytest.raises(InvalidInput):
        Look("z", ("1", "2"), ("top",))
