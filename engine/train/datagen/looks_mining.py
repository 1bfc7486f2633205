"""Mine stylists' style notes for complementary items and assemble development looks.

A style note such as "Team it with dark jeans and loafers" names article types (through a
lexicon of synonyms -> catalog article types) and sometimes their colours.
:func:`engine.train.datagen.style_notes.mine_note` finds those mentions in the *pairing
clauses* of the note (the text after a cue such as "team", "pair", "wear ... with", "style it
with"), skipping mentions of the item itself ("this T-shirt"). :func:`build_looks` then assembles, for every catalog item with such a note,
a look: the item (the anchor) plus, per named slot, one catalog item of a named type, of the
named colour when one is named, of a compatible gender, preferring a compatible usage and
season. Which item of that type is picked is a seeded random choice: the stylist named the
type and colour, not the product. See docs/LOOKS.md for the method and its limits.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from engine.catalog import Product, is_test_id
from engine.catalog.gender import UNISEX_SERVES_LOOKS, gender_ok
from engine.looks.format import Look, LookItem
from engine.looks.slots import conflicts, look_slot
from engine.train.datagen.style_notes import Mention, mine_note

logger = logging.getLogger(__name__)

MAX_ACCESSORIES = 2


# --------------------------------------------------------------------------- compatibility

_USAGE: dict[str, frozenset[str]] = {
    "casual": frozenset({"casual", "smart casual"}),
    "smart casual": frozenset({"casual", "smart casual", "formal"}),
    "formal": frozenset({"formal", "smart casual"}),
    "sports": frozenset({"sports", "casual"}),
    "ethnic": frozenset({"ethnic", "casual"}),
    "party": frozenset({"party", "casual", "formal", "ethnic"}),
    "travel": frozenset({"travel", "casual"}),
}
_SEASONS: dict[str, frozenset[str]] = {
    "summer": frozenset({"summer", "spring"}),
    "spring": frozenset({"spring", "summer", "fall"}),
    "fall": frozenset({"fall", "winter", "spring"}),
    "winter": frozenset({"winter", "fall"}),
}
_UNKNOWN = frozenset({"", "na", "n/a", "none", "null"})


def _norm(value: str | None) -> str:
    v = (value or "").strip().lower()
    return "" if v in _UNKNOWN else v


def look_gender_ok(look_gender: str | None, item_gender: str | None) -> bool:
    """An item of unknown gender may complete a look; a unisex one a men's, women's or boys'."""
    return gender_ok(
        look_gender, item_gender, unknown_item_ok=True, unisex_serves=UNISEX_SERVES_LOOKS
    )


def age_class(age_group: str | None, gender: str | None = None) -> str | None:
    """'kids', 'adults' or None (unknown) from the catalog's age_group (and gender)."""
    a = _norm(age_group)
    if a.startswith("kid"):
        return "kids"
    if a.startswith("adult"):
        return "adults"
    g = _norm(gender)
    if g in ("boys", "girls"):
        return "kids"
    return None


def age_ok(anchor_age: str | None, item_age: str | None) -> bool:
    return anchor_age is None or item_age is None or anchor_age == item_age


def usage_ok(anchor_usage: str | None, item_usage: str | None) -> bool:
    a, i = _norm(anchor_usage), _norm(item_usage)
    if not a or not i:
        return True
    return i in _USAGE.get(a, frozenset({a}))


def season_ok(anchor_season: str | None, item_season: str | None) -> bool:
    a, i = _norm(anchor_season), _norm(item_season)
    if not a or not i:
        return True
    return i in _SEASONS.get(a, frozenset({a}))


# --------------------------------------------------------------------------- assembly


@dataclass
class CatalogPools:
    """Look-eligible products grouped by (split, lower-case article type), sorted by id, with
    memoised tiered candidate lists (so assembling thousands of looks stays fast)."""

    by_type: dict[tuple[str, str], list[Product]]
    _memo: dict[tuple[object, ...], list[list[Product]]] = field(default_factory=dict)

    @classmethod
    def build(cls, products: Iterable[Product]) -> CatalogPools:
        by_type: dict[tuple[str, str], list[Product]] = defaultdict(list)
        for p in products:
            if p.article_type and look_slot(p) is not None:
                split = "test" if is_test_id(p.id) else "train"
                by_type[(split, p.article_type.lower())].append(p)
                by_type[("all", p.article_type.lower())].append(p)
        for pool in by_type.values():
            pool.sort(key=lambda p: (len(p.id), p.id))
        return cls(dict(by_type))

    def candidates(self, split: str, article_type: str) -> list[Product]:
        return self.by_type.get((split, article_type.lower()), [])

    def tiers(
        self,
        split: str,
        article_types: tuple[str, ...],
        gender: str | None,
        colours: tuple[str, ...],
        usage: str | None,
        season: str | None,
        age: str | None = None,
    ) -> list[list[Product]]:
        """Candidate lists from strictest to loosest: colour+usage+season, colour+usage,
        colour, usage, any (all of the right types, a compatible gender and age group)."""
        key = (split, article_types, _norm(gender), colours, _norm(usage), _norm(season), age)
        cached = self._memo.get(key)
        if cached is not None:
            return cached
        base = [
            p
            for t in article_types
            for p in self.candidates(split, t)
            if look_gender_ok(gender, p.gender) and age_ok(age, age_class(p.age_group, p.gender))
        ]
        wanted = {c.lower() for c in colours}
        col = [not wanted or _norm(p.base_colour) in wanted for p in base]
        use = [usage_ok(usage, p.usage) for p in base]
        sea = [season_ok(season, p.season) for p in base]
        masks = [
            [c and u and s for c, u, s in zip(col, use, sea, strict=True)],
            [c and u for c, u in zip(col, use, strict=True)],
            col,
            use,
            [True] * len(base),
        ]
        out = [[p for p, keep in zip(base, mask, strict=True) if keep] for mask in masks]
        self._memo[key] = out
        return out


def _rng(seed: int, anchor_id: str) -> random.Random:
    digest = hashlib.sha1(f"{seed}:{anchor_id}".encode()).hexdigest()
    return random.Random(int(digest[:16], 16))


def _choose_slots(
    anchor_slot: str, anchor_type: str | None, mentions: Sequence[Mention], rng: random.Random
) -> list[Mention]:
    """One mention per slot (alternatives such as 'tracks or jeans' drawn at random),
    dropping the anchor's own slot, conflicting slots and repeated accessory types."""
    by_slot: dict[str, list[Mention]] = defaultdict(list)
    order: list[str] = []
    for m in mentions:
        if m.slot == anchor_slot and m.slot != "accessory":
            continue
        if anchor_type and anchor_type in m.article_types and len(m.article_types) == 1:
            continue
        if conflicts(anchor_slot, m.slot):
            continue
        if any(conflicts(s, m.slot) for s in order):
            continue  # the first named of one-piece vs top/bottom wins
        if m.slot not in by_slot:
            order.append(m.slot)
        by_slot[m.slot].append(m)
    chosen: list[Mention] = []
    for slot in order:
        options = by_slot[slot]
        if slot == "accessory":
            # distinct accessory types (a watch and sunglasses), at most MAX_ACCESSORIES
            distinct: dict[tuple[str, ...], Mention] = {}
            for m in options:
                distinct.setdefault(m.article_types, m)
            picks = list(distinct.values())
            rng.shuffle(picks)
            limit = MAX_ACCESSORIES - (1 if anchor_slot == "accessory" else 0)
            chosen.extend(sorted(picks[:limit], key=lambda m: m.start))
        else:
            chosen.append(options[rng.randrange(len(options))])
    return chosen


def _pick_item(
    mention: Mention,
    anchor: Product,
    look_gender: str | None,
    pools: CatalogPools,
    split: str,
    used: set[str],
    rng: random.Random,
) -> tuple[Product, bool] | None:
    """A catalog item for a mention: (item, colour matched) or None when no item fits."""
    tiers = pools.tiers(
        split,
        mention.article_types,
        look_gender,
        mention.colours,
        anchor.usage,
        anchor.season,
        age_class(anchor.age_group, anchor.gender),
    )
    for level, pool in enumerate(tiers):
        for _ in range(8):
            if not pool:
                break
            item = pool[rng.randrange(len(pool))]
            if item.id not in used:
                return item, (level <= 2 or not mention.colours)
        free = [p for p in pool if p.id not in used]
        if free:
            return free[rng.randrange(len(free))], (level <= 2 or not mention.colours)
    return None


def assemble_look(
    anchor: Product,
    mentions: Sequence[Mention],
    pools: CatalogPools,
    *,
    seed: int = 0,
    same_split: bool = True,
) -> Look | None:
    """The look around ``anchor`` for its mined mentions, or None (no slot / no partner)."""
    anchor_slot = look_slot(anchor)
    if anchor_slot is None or not mentions:
        return None
    rng = _rng(seed, anchor.id)
    chosen = _choose_slots(anchor_slot, anchor.article_type, mentions, rng)
    if not chosen:
        return None
    gender = _norm(anchor.gender)
    if gender == "unisex" or not gender:
        gender = rng.choice(["men", "women"])
    look_gender = gender.capitalize()
    split = ("test" if is_test_id(anchor.id) else "train") if same_split else "all"
    items = [LookItem(anchor.id, anchor_slot)]
    used = {anchor.id}
    phrases: list[str] = []
    colour_misses = 0
    for m in chosen:
        picked = _pick_item(m, anchor, look_gender, pools, split, used, rng)
        if picked is None:
            continue
        item, colour_hit = picked
        used.add(item.id)
        items.append(LookItem(item.id, look_slot(item)))
        phrases.append(m.phrase if not m.colours else f"{m.phrase} ({'/'.join(m.colours)})")
        colour_misses += 0 if colour_hit else 1
    if len(items) < 2:
        return None
    return Look(
        look_id=f"sn-{anchor.id}",
        items=items,
        occasion=anchor.usage if _norm(anchor.usage) else None,
        season=anchor.season if _norm(anchor.season) else None,
        gender=look_gender,
        source="style_note",
        extra={"anchor_id": anchor.id, "mined": phrases, "colour_misses": colour_misses},
    )


@dataclass
class MiningStats:
    notes: int = 0
    notes_with_mentions: int = 0
    looks: int = 0
    test_looks: int = 0
    items_in_looks: int = 0
    colour_named: int = 0

    def as_dict(self) -> dict[str, int]:
        return dict(self.__dict__)


def build_looks(
    products: Sequence[Product],
    *,
    seed: int = 0,
    same_split: bool = True,
    pools: CatalogPools | None = None,
    stats: MiningStats | None = None,
) -> list[Look]:
    """Development looks from every product's style note (deterministic for a seed).

    With ``same_split`` (default) partners come from the anchor's split, so looks whose anchor
    is a test item (:func:`engine.catalog.is_test_id`) hold only test items.
    """
    pools = pools or CatalogPools.build(products)
    stats = stats if stats is not None else MiningStats()
    looks: list[Look] = []
    for p in products:
        if not p.style_note:
            continue
        stats.notes += 1
        mentions = mine_note(p.style_note)
        if not mentions:
            continue
        stats.notes_with_mentions += 1
        stats.colour_named += sum(1 for m in mentions if m.colours)
        look = assemble_look(p, mentions, pools, seed=seed, same_split=same_split)
        if look is None:
            continue
        looks.append(look)
        stats.looks += 1
        stats.items_in_looks += len(look.items)
        stats.test_looks += int(is_test_id(p.id))
    logger.info("mined %d looks from %d style notes", stats.looks, stats.notes)
    return looks


def look_anchor(look: Look) -> str:
    """The anchor of a look: ``extra.anchor_id`` for mined looks, else its first item."""
    anchor = look.extra.get("anchor_id")
    return str(anchor) if anchor else look.items[0].item_id


def is_test_look(look: Look) -> bool:
    """Held out for evaluation when its anchor is a test item."""
    return is_test_id(look_anchor(look))


def split_looks(looks: Sequence[Look]) -> tuple[list[Look], list[Look]]:
    """(train looks, test looks) by the anchor's split."""
    train = [lk for lk in looks if not is_test_look(lk)]
    test = [lk for lk in looks if is_test_look(lk)]
    return train, test
