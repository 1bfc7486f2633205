"""Style-note mining and look assembly on hand-written notes and a hand-made catalog."""

from __future__ import annotations

from itertools import count

import pytest

from engine.catalog import Product, is_test_id
from engine.train.datagen.looks_mining import (
    CatalogPools,
    assemble_look,
    build_looks,
    is_test_look,
    split_looks,
)
from engine.train.datagen.style_notes import mine_note, pairing_clauses


def types(note: str) -> list[tuple[str, ...]]:
    return [m.article_types for m in mine_note(note)]


def test_names_types_and_colours() -> None:
    ms = mine_note("A classic tee. Team it with dark jeans and loafers for the weekend.")
    assert [m.article_types for m in ms] == [("Jeans",), ("Casual Shoes",)]
    assert [m.slot for m in ms] == ["bottom", "shoes"]
    assert "Navy Blue" in ms[0].colours and "Black" in ms[0].colours
    assert ms[1].colours == ()


def test_multiword_colour_wins() -> None:
    (m,) = mine_note("Pair it with navy blue chinos.")
    assert m.article_types == ("Trousers",)
    assert m.colours == ("Navy Blue",)
    (w,) = mine_note("Style it with white sneakers.")
    assert w.article_types == ("Casual Shoes",) and "White" in w.colours


def test_skips_the_item_itself() -> None:
    note = "Team this striped T-shirt with chinos and lace-ups."
    assert types(note) == [("Trousers",), ("Formal Shoes",)]
    assert types("Wear this pair of stylish sandals with a dress.") == [("Dresses",)]


def test_only_pairing_clauses_count() -> None:
    assert mine_note("This watch has a steel case and a leather strap with a chain.") == []
    assert types("The shirt is made of cotton. Pair it with trousers.") == [("Trousers",)]
    assert pairing_clauses("No cue here. Team it with jeans") == [(17, " it with jeans")]


def test_longest_match_and_word_senses() -> None:
    assert types("Pair it with track pants.") == [("Track Pants",)]
    assert types("Team it with a denim jacket.") == [("Jackets",)]
    # 'tops' as a verb, 'dress' as a verb, 'watch' as a verb are not items
    assert mine_note("This pair tops our wishlist, so team it up with style.") == []
    assert types("Dress it up with heels.") == [("Heels",)]
    assert types("Wear it and watch heads turn, with jeans.") == [("Jeans",)]


def test_alternatives_are_kept_for_assembly() -> None:
    assert types("Team this with tracks or jeans.") == [("Track Pants",), ("Jeans",)]


def test_empty_notes() -> None:
    assert mine_note(None) == []
    assert mine_note("") == []


# --------------------------------------------------------------------------- assembly


def _ids(test: bool, n: int) -> list[str]:
    out = []
    for i in count(1000):
        if is_test_id(str(i)) == test:
            out.append(str(i))
            if len(out) == n:
                return out
    raise AssertionError


def _p(pid: str, article_type: str, sub: str, master: str, **kw: str) -> Product:
    base = {
        "gender": "Men",
        "age_group": "Adults-Men",
        "base_colour": "Blue",
        "usage": "Casual",
        "season": "Summer",
    }
    base.update(kw)
    return Product(
        id=pid,
        title=f"{base['gender']} {base['base_colour']} {article_type}",
        article_type=article_type,
        sub_category=sub,
        master_category=master,
        **base,
    )


@pytest.fixture
def catalog() -> list[Product]:
    tr = _ids(False, 12)
    te = _ids(True, 4)
    return [
        _p(
            tr[0],
            "Tshirts",
            "Topwear",
            "Apparel",
            style_note="A soft tee. Team it with black jeans and loafers.",
        ),
        _p(tr[1], "Jeans", "Bottomwear", "Apparel", base_colour="Black"),
        _p(tr[2], "Jeans", "Bottomwear", "Apparel", base_colour="Blue"),
        _p(
            tr[3],
            "Jeans",
            "Bottomwear",
            "Apparel",
            base_colour="Black",
            gender="Women",
            age_group="Adults-Women",
        ),
        _p(
            tr[4],
            "Jeans",
            "Bottomwear",
            "Apparel",
            base_colour="Black",
            gender="Boys",
            age_group="Kids-Boys",
        ),
        _p(tr[5], "Casual Shoes", "Shoes", "Footwear", base_colour="Brown"),
        _p(
            tr[6],
            "Dresses",
            "Dress",
            "Apparel",
            gender="Women",
            age_group="Adults-Women",
            style_note="Wear it with a top and heels.",
        ),
        _p(tr[7], "Heels", "Shoes", "Footwear", gender="Women", age_group="Adults-Women"),
        _p(tr[8], "Tops", "Topwear", "Apparel", gender="Women", age_group="Adults-Women"),
        _p(
            tr[9],
            "Lipstick",
            "Lips",
            "Personal Care",
            gender="Women",
            style_note="Pair it with a dress and heels.",
        ),
        _p(tr[10], "Socks", "Socks", "Accessories", style_note="Wear them with sneakers."),
        _p(tr[11], "Shirts", "Topwear", "Apparel", style_note="A fine shirt."),
        _p(
            te[0],
            "Tshirts",
            "Topwear",
            "Apparel",
            style_note="Team it with black jeans and loafers.",
        ),
        _p(te[1], "Jeans", "Bottomwear", "Apparel", base_colour="Black"),
        _p(te[2], "Casual Shoes", "Shoes", "Footwear", base_colour="White"),
        _p(te[3], "Jeans", "Bottomwear", "Apparel", base_colour="Blue"),
    ]


def test_assembles_named_type_colour_and_gender(catalog: list[Product]) -> None:
    by_id = {p.id: p for p in catalog}
    looks = {lk.look_id: lk for lk in build_looks(catalog, seed=0)}
    tee = catalog[0]
    look = looks[f"sn-{tee.id}"]
    assert look.items[0].item_id == tee.id and look.items[0].slot == "top"
    partners = {it.slot: by_id[it.item_id] for it in look.items[1:]}
    assert set(partners) == {"bottom", "shoes"}
    # the black men's jeans: not the blue ones, the women's or the boys'
    assert partners["bottom"].id == catalog[1].id
    assert partners["shoes"].article_type == "Casual Shoes"
    assert look.gender == "Men" and look.source == "style_note"


def test_no_look_without_slot_or_partner(catalog: list[Product]) -> None:
    ids = {lk.look_id for lk in build_looks(catalog, seed=0)}
    assert f"sn-{catalog[9].id}" not in ids  # lipstick: no outfit slot
    assert f"sn-{catalog[10].id}" not in ids  # socks are not part of looks
    assert f"sn-{catalog[11].id}" not in ids  # the note names nothing


def test_one_piece_drops_conflicting_top(catalog: list[Product]) -> None:
    by_id = {p.id: p for p in catalog}
    looks = {lk.look_id: lk for lk in build_looks(catalog, seed=0)}
    dress = looks[f"sn-{catalog[6].id}"]
    assert [it.slot for it in dress.items] == ["one-piece", "shoes"]
    assert by_id[dress.items[1].item_id].article_type == "Heels"


def test_test_anchor_gets_test_partners_only(catalog: list[Product]) -> None:
    train, test = split_looks(build_looks(catalog, seed=0))
    assert len(test) == 1 and all(not is_test_look(lk) for lk in train)
    assert all(is_test_id(it.item_id) for it in test[0].items)
    for lk in train:
        assert not any(is_test_id(it.item_id) for it in lk.items)


def test_deterministic_for_a_seed(catalog: list[Product]) -> None:
    a = [lk.to_json() for lk in build_looks(catalog, seed=3)]
    b = [lk.to_json() for lk in build_looks(list(reversed(catalog)), seed=3)]
    assert sorted(a, key=str) == sorted(b, key=str)


def test_assemble_look_needs_mentions(catalog: list[Product]) -> None:
    pools = CatalogPools.build(catalog)
    assert assemble_look(catalog[0], [], pools) is None
