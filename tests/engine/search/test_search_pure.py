"""Pure parts of search: client-side fusion, category fusion, query arithmetic helpers."""

from __future__ import annotations

import numpy as np
import pytest

from engine.search.category import fuse_category, knn_vote, predict_category
from engine.search.compose import (
    AttributeLexicon,
    Modifier,
    compose_vector,
    flatten_attr_prob,
    normalize_phrase,
    parse_modifier,
    soft_factor,
    soft_fields,
)
from engine.search.fusion import MIN_SCORE, fuse, min_max

VOCAB = {
    "base_colour": ["Black", "Red", "Navy Blue", "Blue", "Grey", "Off White", "NA"],
    "pattern": ["Solid", "Striped", "Checked", "Printed"],
    "sleeve_length": ["Sleeveless", "Short Sleeves", "Long Sleeves"],
    "neck": ["Round Neck", "V Neck", "Polo Collar"],
    "article_type": ["Shirts", "Tshirts", "Dresses", "Casual Shoes", "Jeans"],
    "gender": ["Men", "Women", "Unisex"],
    "usage": ["Casual", "Formal"],
    "master_category": ["Apparel"],
}


# --------------------------------------------------------------------------- fusion


def test_min_max_matches_neural_search_semantics() -> None:
    assert min_max({"a": 3.0, "b": 1.0, "c": 2.0}) == {"a": 1.0, "b": MIN_SCORE, "c": 0.5}
    assert min_max({"a": 2.0, "b": 2.0}) == {"a": 1.0, "b": 1.0}
    assert min_max({}) == {}


def test_fuse_weights_missing_docs_and_order() -> None:
    lex = {"a": 10.0, "b": 5.0, "c": 0.0}
    sem = {"b": 0.9, "d": 0.5}
    out = fuse([lex, sem], [0.4, 0.6])
    by = {f.doc_id: f for f in out}
    assert by["a"].score == pytest.approx(0.4 * 1.0)
    assert by["b"].score == pytest.approx(0.4 * 0.5 + 0.6 * 1.0)
    assert by["d"].score == pytest.approx(0.6 * MIN_SCORE)
    assert by["d"].raw == (None, 0.5)
    assert [f.doc_id for f in out][:2] == ["b", "a"]
    # weights are relative
    again = fuse([lex, sem], [2, 3])
    assert [f.score for f in again] == pytest.approx([f.score for f in out])


def test_fuse_rejects_bad_weights() -> None:
    with pytest.raises(ValueError):
        fuse([{"a": 1.0}], [0.5, 0.5])
    with pytest.raises(ValueError):
        fuse([{"a": 1.0}, {}], [0.0, 0.0])


# --------------------------------------------------------------------------- category


def test_knn_vote_is_similarity_weighted_and_case_insensitive() -> None:
    vote = knn_vote([("Shirts", 0.9), ("shirts", 0.3), ("Tshirts", 0.8), (None, 0.9), ("X", -1)])
    assert set(vote) == {"Shirts", "Tshirts"}
    assert vote["Shirts"] == pytest.approx(1.2 / 2.0)
    assert sum(vote.values()) == pytest.approx(1.0)
    assert knn_vote([]) == {}


def test_fuse_category_alpha_and_one_sided_inputs() -> None:
    clf = {"Shirts": 0.7, "Tshirts": 0.3}
    vote = {"tshirts": 1.0}
    fused = fuse_category(clf, vote, alpha=0.5)
    assert fused["tshirts"] == pytest.approx(0.65)  # catalog spelling kept
    assert fused["Shirts"] == pytest.approx(0.35)
    assert fuse_category(clf, {}, alpha=0.2) == pytest.approx(clf)
    assert fuse_category({}, vote, alpha=0.9) == pytest.approx(vote)
    with pytest.raises(ValueError):
        fuse_category(clf, vote, alpha=1.5)


def test_predict_category_vote_can_overrule_classifier_and_threshold_gates() -> None:
    clf = {"Shirts": 0.55, "Tshirts": 0.45}
    neighbours = [("Tshirts", 0.9)] * 8 + [("Shirts", 0.5)] * 2
    pred = predict_category(clf, neighbours, alpha=0.5, threshold=0.5)
    assert pred.label == "Tshirts"
    assert pred.classifier_label == "Shirts"
    assert pred.vote_label == "Tshirts"
    assert pred.restrict
    unsure = predict_category({"A": 0.4, "B": 0.35, "C": 0.25}, [], threshold=0.5)
    assert unsure.label == "A" and not unsure.restrict
    assert predict_category({}, []).label is None


# --------------------------------------------------------------------------- compose


@pytest.mark.parametrize(
    ("text", "wanted", "unwanted"),
    [
        ("this shirt but in black", ("shirt", "black"), ()),
        ("this shirt but in black, not striped", ("shirt", "black"), ("striped",)),
        ("red without sleeves but with a v-neck", ("red", "v-neck"), ("sleeves",)),
        ("same but -floral", (), ("floral",)),
        ("", (), ()),
        (None, (), ()),
    ],
)
def test_parse_modifier(
    text: str | None, wanted: tuple[str, ...], unwanted: tuple[str, ...]
) -> None:
    m = parse_modifier(text)
    assert m.wanted == wanted
    assert m.unwanted == unwanted


def test_modifier_merged_with_explicit_words() -> None:
    m = Modifier(("black",)).merged(wanted=["navy blue"], unwanted=["the stripes", "black"])
    assert m.wanted == ("black", "navy", "blue")
    assert m.unwanted == ("stripes", "black")


def test_normalize_phrase() -> None:
    assert normalize_phrase("Navy Blue") == "navyblue"
    assert normalize_phrase("T-Shirts") == normalize_phrase("tshirt") == "tshirt"
    assert normalize_phrase("Dresses") == normalize_phrase("dress") == "dress"
    assert normalize_phrase("men's") == normalize_phrase("Men") == "men"
    assert normalize_phrase("Casual Shoes") == "casualshoe"


def test_lexicon_maps_words_to_attribute_values() -> None:
    lex = AttributeLexicon(VOCAB)
    words = parse_modifier("navy blue sleeveless dress for women, not striped, no polo collar")
    wanted, unwanted = soft_fields(lex, words)
    got = {(m.attribute, m.value) for m in wanted}
    assert got == {
        ("base_colour", "Navy Blue"),  # the bigram wins over "blue"
        ("sleeve_length", "Sleeveless"),
        ("article_type", "Dresses"),
        ("gender", "Women"),
    }
    assert {(m.attribute, m.value) for m in unwanted} == {
        ("pattern", "Striped"),
        ("neck", "Polo Collar"),
    }
    fields = {m.field for m in wanted}
    assert "attr_prob.base_colour.navy_blue" in fields
    assert "attr_prob.sleeve_length.sleeveless" in fields


def test_lexicon_aliases_and_placeholders() -> None:
    lex = AttributeLexicon(VOCAB)
    assert lex.lookup("gray") == [("base_colour", "Grey")]
    assert lex.lookup("stripes") == [("pattern", "Striped")]
    assert lex.lookup("off-white") == [("base_colour", "Off White")]
    assert lex.lookup("na") == []
    assert lex.lookup("apparel") == []  # master_category is not a soft attribute
    assert lex.lookup("purple") == []


def test_wanted_value_is_not_also_unwanted() -> None:
    lex = AttributeLexicon(VOCAB)
    wanted, unwanted = soft_fields(lex, Modifier(("red",), ("red", "striped")))
    assert [m.value for m in wanted] == ["Red"]
    assert [m.value for m in unwanted] == ["Striped"]


def test_compose_vector_arithmetic() -> None:
    img = np.array([1.0, 0.0, 0.0])
    red = np.array([0.0, 1.0, 0.0])
    stripes = np.array([0.0, 0.0, 1.0])
    q = compose_vector(img, red, stripes, text_weight=1.0, negative_weight=0.5)
    expected = np.array([1.0, 1.0, -0.5]) / np.linalg.norm([1.0, 1.0, -0.5])
    assert q == pytest.approx(expected, abs=1e-6)
    assert np.linalg.norm(compose_vector(img)) == pytest.approx(1.0)
    with pytest.raises(ValueError):
        compose_vector(img, -img, text_weight=1.0)


def test_soft_factor_replicates_script() -> None:
    probs = {"attr_prob.base_colour.black": 0.8, "attr_prob.pattern.striped": 0.9}
    f = soft_factor(probs, ["attr_prob.base_colour.black"], ["attr_prob.pattern.striped"], 0.05)
    assert f == pytest.approx(0.8 * 0.1)
    assert soft_factor({}, ["attr_prob.x.y"], [], 0.05) == pytest.approx(0.05)
    assert soft_factor({"u": 1.0}, [], ["u"], 0.05) == pytest.approx(0.05)
    assert soft_factor({}, [], [], 0.05) == 1.0


def test_flatten_attr_prob() -> None:
    src = {"base_colour": {"black": 0.7, "navy_blue": 0.2}, "pattern": {"solid": 1}}
    assert flatten_attr_prob(src) == {
        "attr_prob.base_colour.black": 0.7,
        "attr_prob.base_colour.navy_blue": 0.2,
        "attr_prob.pattern.solid": 1.0,
    }
    assert flatten_attr_prob(None) == {}
