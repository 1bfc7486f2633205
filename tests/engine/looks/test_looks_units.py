"""Slots, the look format, look documents/queries and benchmark question builders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from engine.catalog import Product
from engine.errors import InvalidInput
from engine.look_queries import product_filters
from engine.looks.format import Look, LookError, LookItem, iter_looks_text, parse_look
from engine.looks.slots import (
    complementary_slots,
    conflicts,
    look_slot,
    slot_for,
    validate_slot,
)
from engine.looks.store import item_vector, look_document, public_look
from engine.train.looks_benchmark import (
    CoCategoryBaseline,
    compatibility_pairs,
    fitb_questions,
    look_scores,
    partner_pairs,
    slot_pools,
)


def _prod(article_type: str, sub: str, master: str = "Apparel") -> Product:
    return Product(
        id="1", title="x", article_type=article_type, sub_category=sub, master_category=master
    )


def test_slots_follow_the_document_mapping() -> None:
    assert slot_for(_prod("Tshirts", "Topwear")) == "top"
    assert slot_for(_prod("Jackets", "Topwear")) == "outerwear"
    assert slot_for(_prod("Watches", "Watches", "Accessories")) == "accessory"
    assert slot_for({"article_type": "Heels", "sub_category": "Shoes"}) == "shoes"
    assert slot_for({"slot": "bag", "article_type": "whatever"}) == "bag"
    assert slot_for(_prod("Lipstick", "Lips", "Personal Care")) is None


def test_look_slot_excludes_non_outfit_types() -> None:
    assert slot_for(_prod("Socks", "Socks", "Accessories")) == "accessory"
    assert look_slot(_prod("Socks", "Socks", "Accessories")) is None
    assert look_slot(_prod("Nightdress", "Loungewear and Nightwear")) is None
    assert look_slot(_prod("Dresses", "Dress")) == "one-piece"


def test_complementary_slots() -> None:
    top = complementary_slots("top")
    assert "top" not in top and "one-piece" not in top and "bottom" in top
    assert "accessory" in complementary_slots("accessory")
    assert set(complementary_slots("one-piece")).isdisjoint({"top", "bottom", "one-piece"})
    assert conflicts("bottom", "one-piece") and not conflicts("shoes", "bag")
    assert len(complementary_slots(None)) == 7


def test_validate_slot() -> None:
    assert validate_slot("One Piece") == "one-piece"
    assert validate_slot("onepiece") == "one-piece"
    with pytest.raises(ValueError):
        validate_slot("hat")


# --------------------------------------------------------------------------- format


def test_parse_look_accepts_minimal_and_extra_fields() -> None:
    look = parse_look(
        {
            "look_id": 7,
            "items": ["1", {"item_id": 2, "slot": "Shoes"}, "1"],
            "season": "Summer",
            "note": "x",
        }
    )
    assert look.look_id == "7"
    assert look.items == [LookItem("1", None), LookItem("2", "shoes")]  # duplicate dropped
    assert look.season == "Summer" and look.extra == {"note": "x"}
    assert json.loads(json.dumps(look.to_json()))["items"][1] == {"item_id": "2", "slot": "shoes"}


@pytest.mark.parametrize(
    "raw",
    [
        [],
        {"items": [{"item_id": "1"}]},
        {"look_id": "", "items": [{"item_id": "1"}]},
        {"look_id": "a", "items": []},
        {"look_id": "a", "items": [{"slot": "top"}]},
        {"look_id": "a", "items": [{"item_id": "1", "slot": "hat"}]},
        {"look_id": "a", "items": [{"item_id": "1"}], "season": {"x": 1}},
    ],
)
def test_parse_look_rejects(raw: object) -> None:
    with pytest.raises(InvalidInput):
        parse_look(raw)


def test_iter_looks_text_never_raises() -> None:
    lines = [
        '{"look_id": "a", "items": [{"item_id": "1"}, {"item_id": "2"}]}',
        "{not json",
        "",
        '{"look_id": "b", "items": [{"item_id": "1", "slot": "hat"}]}',
    ]
    rows = list(iter_looks_text(lines))
    assert isinstance(rows[0], Look)
    assert isinstance(rows[1], LookError) and rows[1].line == 2
    assert isinstance(rows[2], LookError) and rows[2].look_id == "b" and "slot" in rows[2].reason


# --------------------------------------------------------------------------- store


def test_look_document_uses_product_vectors_and_drops_unknown() -> None:
    look = Look(
        "l1",
        [LookItem("1", None), LookItem("2", "shoes"), LookItem("9", "bag")],
        gender="Men",
        source="test",
    )
    products = {
        "1": {
            "slot": "top",
            "article_type": "Tshirts",
            "base_colour": "Red",
            "joint_embedding": [1.0, 0.0],
            "image_embedding": [0.0, 1.0],
        },
        "2": {
            "article_type": "Casual Shoes",
            "sub_category": "Shoes",
            "text_embedding": [0.5, 0.5],
        },
    }
    doc = look_document(look, products)
    assert doc["item_ids"] == ["1", "2"] and doc["slots"] == ["shoes", "top"]
    assert doc["items"][0]["embedding"] == [1.0, 0.0]
    assert doc["items"][1] == {
        "item_id": "2",
        "slot": "shoes",
        "article_type": "Casual Shoes",
        "embedding": [0.5, 0.5],
    }
    assert doc["gender"] == "Men" and doc["source"] == "test"
    assert "embedding" not in public_look(doc)["items"][0]
    assert item_vector({}) is None


def test_product_filters() -> None:
    f = product_filters(
        slot="shoes", genders=["Men", "Unisex"], max_price=100, in_stock=True, exclude_ids=["1"]
    )
    must = f["bool"]["filter"]
    assert {"term": {"slot": "shoes"}} in must
    assert {"range": {"price": {"lte": 100}}} in must
    assert f["bool"]["must_not"] == [{"ids": {"values": ["1"]}}]
    assert product_filters()["bool"]["filter"] == [{"match_all": {}}]


# --------------------------------------------------------------------------- benchmark


def _looks() -> list[Look]:
    return [
        Look(
            f"l{i}",
            [LookItem(f"t{i}", "top"), LookItem(f"b{i}", "bottom"), LookItem(f"s{i}", "shoes")],
        )
        for i in range(20)
    ]


def test_fitb_questions_hide_one_item_among_same_slot_choices() -> None:
    looks = _looks()
    pools = slot_pools(
        [
            (f"{s}{i}", sl)
            for i in range(20)
            for s, sl in (("t", "top"), ("b", "bottom"), ("s", "shoes"))
        ]
    )
    qs = fitb_questions(looks, pools, seed=1)
    assert len(qs) == 20
    for q in qs:
        assert len(q.choices) == 4 and len(set(q.choices)) == 4
        hidden = q.choices[q.answer]
        assert all(c in pools[q.slot] for c in q.choices)
        assert hidden not in q.context_ids and len(q.context_ids) == 2
        look = next(lk for lk in looks if lk.look_id == q.look_id)
        assert hidden in look.item_ids
        assert all(c not in look.item_ids for k, c in enumerate(q.choices) if k != q.answer)
    assert fitb_questions(looks, pools, seed=1) == qs
    assert len(fitb_questions(looks, pools, seed=1, limit=5)) == 5


def test_compatibility_pairs_swap_one_item_of_the_same_slot() -> None:
    looks = _looks()
    pools = slot_pools(
        [
            (f"{s}{i}", sl)
            for i in range(20)
            for s, sl in (("t", "top"), ("b", "bottom"), ("s", "shoes"))
        ]
    )
    pairs = compatibility_pairs(looks, pools, seed=0)
    assert len(pairs) == 40
    for (real, y1), (fake, y0) in zip(pairs[::2], pairs[1::2], strict=True):
        assert (y1, y0) == (1, 0)
        diff = [(a, b) for a, b in zip(real, fake, strict=True) if a != b]
        assert len(diff) == 1 and diff[0][0][1] == diff[0][1][1]


def test_partner_pairs_use_the_anchor() -> None:
    look = Look(
        "x",
        [LookItem("a", "top"), LookItem("b", "bottom"), LookItem("c", "shoes")],
        extra={"anchor_id": "b"},
    )
    assert partner_pairs([look]) == [
        (("b", "bottom"), ("a", "top")),
        (("b", "bottom"), ("c", "shoes")),
    ]


def test_co_category_baseline_prefers_seen_type_pairs() -> None:
    type_of = {"t1": "Tshirts", "j1": "Jeans", "t2": "Tshirts", "j2": "Jeans", "s2": "Skirts"}
    base = CoCategoryBaseline(type_of).fit(
        [Look("l", [LookItem("t1", "top"), LookItem("j1", "bottom")])]
    )
    scores = base(["t2"], ["top"], ["j2", "s2"], "bottom")
    assert scores[0] > scores[1]
    # the look scorer averages pairwise scores
    assert look_scores([[("t2", "top"), ("j2", "bottom")]], base)[0] == pytest.approx(scores[0])
    assert np.isfinite(scores).all()


def test_item_vectors_use_the_document_text_encoder_like_ingest(tmp_path: Path) -> None:
    """With a document text encoder (the static one, as ingest uses), item vectors are computed
    from it: MiniLM and its cache are not touched."""
    from engine.train.looks_vectors import compute_item_vectors

    class Joint:
        text_for_product = staticmethod(lambda p: f"text {p.id}")

        @property
        def text_encoder(self) -> None:
            raise AssertionError("MiniLM must not run")

        def embed_text_features(self, feats: np.ndarray) -> np.ndarray:
            return feats[:, :4] * 2

    class Static:
        def encode(self, texts: list[str]) -> np.ndarray:
            return np.stack([np.full(8, float(t.split()[-1])) for t in texts]).astype(np.float32)

    products = [Product(id="3", title="a"), Product(id="5", title="b")]
    vectors = compute_item_vectors(
        products, Joint(), None, cache_dir=tmp_path, document_text=Static()
    )
    np.testing.assert_allclose(vectors.get(["5"], "text"), [[10.0] * 4])
    assert list(tmp_path.iterdir()) == []
