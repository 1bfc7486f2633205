"""Outfit slots from a product's own type and category names, for any catalog.

A slot says which part of an outfit a product can be: ``top``, ``bottom``, ``one-piece``,
``outerwear``, ``shoes``, ``bag`` or ``accessory`` (``None``: no part of an outfit, e.g.
underwear, beauty, home). Nothing here knows one retailer's names. The slot comes from
**English keyword rules** over the product's names, tried field by field: its type
(``article_type``), then its category levels (``sub_category``, ``master_category``); the first
field that matches decides.

Within one name, the keyword that ends **last** wins, because English puts the head noun last:
"shirt dress" is a dress, "dress shirt" a shirt, "shoe bag" a bag, "kurta set" a set (on a tie
the longer keyword wins). Words are compared lower-case, ASCII-folded and singular ("Dresses"
-> "dress"), so "T-Shirts", "tshirt" and "T Shirt" all match.

A retailer overrides any of it in its mapping file (``[taxonomy]``, see docs/MAPPING.md):

* ``slots = {"Kimono" = "outerwear", "Booties" = "accessory"}``: a type (or category) name ->
  slot (``"none"`` = no slot), checked before the rules;
* ``keywords = {outerwear = ["kimono"]}``: extra keywords for a slot (``none`` too);
* ``not_in_looks = ["socks"]`` / ``in_looks = [...]``: keywords of types that have a slot but are
  never proposed as part of a look (socks, swimwear, nightwear ... by default).

:meth:`Taxonomy.report` counts the types that got no slot (with examples) so ingest and fit can
say what was not mapped instead of dropping it silently.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

SLOTS: tuple[str, ...] = ("top", "bottom", "one-piece", "outerwear", "shoes", "bag", "accessory")
NO_SLOT = "none"

# slot -> keywords (singular or plural, any case; phrases allowed). English only.
# fmt: off
DEFAULT_KEYWORDS: dict[str, tuple[str, ...]] = {
    NO_SLOT: (
        "bra", "brief", "boxer", "trunk", "innerwear", "lingerie", "underwear", "panty",
        "panties", "shapewear", "thermal", "camisole set", "perfume", "fragrance",
        "deodorant", "lipstick", "lip", "nail", "makeup", "make up", "skin care", "skincare",
        "beauty", "cosmetic", "eyeshadow", "kajal", "eyeliner", "mascara", "foundation",
        "home", "cushion", "candle", "towel", "bedding", "water bottle", "ipad", "mobile",
        "phone case", "key chain", "keychain", "gift set", "free gift", "gift card",
        "travel accessory", "accessory gift set", "sports equipment", "ball", "racket",
        "peel", "beauty accessory",
    ),
    "one-piece": (
        "dress", "jumpsuit", "romper", "playsuit", "saree", "sari", "lehenga", "lehenga choli",
        "kurta set", "clothing set", "apparel set", "complete set", "co ord set",
        "salwar and dupatta", "nightdress", "night dress", "night suit", "nightsuit",
        "baby doll", "robe", "bathrobe", "bath robe", "tracksuit", "swimsuit", "swimwear",
        "bikini", "overall", "dungaree", "kaftan", "caftan", "onesie",
    ),
    "outerwear": (
        "jacket", "blazer", "coat", "overcoat", "raincoat", "trench", "waistcoat", "gilet",
        "parka", "anorak", "poncho", "cape", "shrug", "windcheater", "bomber", "puffer",
        "outerwear",
    ),
    "top": (
        "top", "shirt", "tshirt", "t shirt", "tee", "blouse", "sweater", "sweatshirt", "hoodie",
        "kurta", "kurti", "tunic", "polo", "jersey", "pullover", "jumper", "cardigan",
        "camisole", "cami", "bodysuit", "tank", "topwear", "crop top", "henley",
    ),
    "bottom": (
        "trouser", "pant", "jean", "short", "skirt", "legging", "jegging", "jogger", "capri",
        "chino", "salwar", "churidar", "patiala", "palazzo", "culotte", "bermuda",
        "track pant", "skort", "bottomwear", "bottom",
    ),
    "shoes": (
        "shoe", "sneaker", "trainer", "sandal", "boot", "heel", "flip flop", "flipflop",
        "loafer", "moccasin", "slipper", "espadrille", "pump", "mule", "clog", "ballet flat",
        "ballerina", "flat", "footwear", "slingback", "wedge", "brogue", "slider", "slide",
    ),
    "bag": (
        "bag", "backpack", "handbag", "clutch", "tote", "purse", "satchel", "rucksack",
        "messenger bag", "laptop bag", "duffel bag", "bum bag", "belt bag", "shopper", "pouch",
    ),
    "accessory": (
        "accessory", "accessories", "belt", "watch", "sunglass", "glasses", "eyewear",
        "spectacle", "jewel", "jewellery", "jewelry", "necklace", "earring", "bracelet",
        "bangle", "ring", "pendant", "brooch", "anklet", "chain", "scarf", "stole", "muffler",
        "shawl", "dupatta", "foulard", "hat", "cap", "beanie", "headband", "hairband",
        "hair accessory", "hair clip", "headwear", "glove", "mitten", "tie", "bow tie",
        "cufflink", "sock", "stocking", "tights", "umbrella", "wristband", "suspender",
        "wallet", "cardholder", "card holder", "mask", "bijou", "bandana", "shoe accessory",
        "shoe lace", "bootie",
    ),
}

# Keywords of types that have a slot but never take part in a look (checked on the type).
DEFAULT_NOT_IN_LOOKS: tuple[str, ...] = (
    "sock", "bootie", "shoe accessory", "shoe lace", "nightdress", "night dress", "night suit",
    "nightsuit", "nightwear", "baby doll", "robe", "bathrobe", "bath robe", "swimwear",
    "swimsuit", "bikini", "swim", "stocking", "tights", "lounge", "pyjama", "pajama",
    "sleepwear", "umbrella", "wristband", "free gift", "onesie",
)
# fmt: on

# Slots that cannot be worn together: a one-piece replaces both top and bottom.
CONFLICTS: dict[str, frozenset[str]] = {
    "one-piece": frozenset({"top", "bottom"}),
    "top": frozenset({"one-piece"}),
    "bottom": frozenset({"one-piece"}),
}

# The product fields a slot is read from, most specific first.
SLOT_FIELDS: tuple[str, ...] = ("article_type", "sub_category", "master_category")


def fold(text: str) -> str:
    """Lower-case ASCII words separated by single spaces: 'T-Shirts' -> 't shirts'."""
    t = unicodedata.normalize("NFKD", str(text)).encode("ascii", "ignore").decode("ascii")
    return " ".join(re.findall(r"[a-z0-9]+", t.lower()))


def singular(word: str) -> str:
    """A crude English singular that is the same for a keyword and a catalog word."""
    if len(word) > 3 and word.endswith(("sses", "shes", "ches", "xes")):
        word = word[:-2]
    elif len(word) > 2 and word.endswith("s") and not word.endswith(("ss", "us")):
        word = word[:-1]
    # "accessory" and "accessories" both -> "accessorie"; "booties" and "bootie" -> "bootie"
    if len(word) > 3 and word.endswith("y") and word[-2] not in "aeiou":
        word = word[:-1] + "ie"
    return word


def words(text: str) -> tuple[str, ...]:
    return tuple(singular(w) for w in fold(text).split())


def canonical_slot(slot: str) -> str | None:
    """A slot name as written in a mapping file -> the slot (``none`` -> None)."""
    s = str(slot).strip().lower().replace("_", "-").replace(" ", "-")
    if s == "onepiece":
        s = "one-piece"
    if s in ("none", "null", "no-slot", "-"):
        return None
    if s not in SLOTS:
        raise ValueError(f"unknown slot {slot!r}; expected one of {', '.join(SLOTS)} or none")
    return s


def _field(product: Any, name: str) -> Any:
    if isinstance(product, Mapping):
        return product.get(name)
    return getattr(product, name, None)


@dataclass(frozen=True)
class SlotReport:
    """Types that got no slot (counts and examples) out of all products seen."""

    products: int
    by_slot: dict[str, int]
    unmapped: dict[str, int]  # type (or "(no type)") -> count

    @property
    def unmapped_count(self) -> int:
        return sum(self.unmapped.values())

    def summary(self, examples: int = 10) -> str:
        if not self.unmapped:
            return f"all {self.products} products have an outfit slot"
        top = sorted(self.unmapped.items(), key=lambda kv: (-kv[1], kv[0]))[:examples]
        shown = ", ".join(f"{name} ({n})" for name, n in top)
        return (
            f"{self.unmapped_count} of {self.products} products ({len(self.unmapped)} types) "
            f"have no outfit slot and are left out of complete the look: {shown}"
            " (map them with [taxonomy] slots in the mapping file if they should have one)"
        )

    def as_dict(self) -> dict[str, Any]:
        return {
            "products": self.products,
            "by_slot": dict(self.by_slot),
            "unmapped_products": self.unmapped_count,
            "unmapped_types": dict(sorted(self.unmapped.items(), key=lambda kv: -kv[1])),
        }


@dataclass(frozen=True)
class Taxonomy:
    """Slot rules: the default English keywords plus one retailer's overrides."""

    keywords: Mapping[str, Sequence[str]] = field(default_factory=lambda: dict(DEFAULT_KEYWORDS))
    overrides: Mapping[str, str | None] = field(default_factory=dict)  # folded name -> slot
    not_in_looks: Sequence[str] = DEFAULT_NOT_IN_LOOKS

    def __post_init__(self) -> None:
        rules: list[tuple[tuple[str, ...], str | None]] = []
        for slot, kws in self.keywords.items():
            target = canonical_slot(slot)
            for kw in kws:
                w = words(kw)
                if w:
                    rules.append((w, target))
        object.__setattr__(self, "_rules", tuple(rules))
        object.__setattr__(
            self, "_not_in_looks", tuple(w for kw in self.not_in_looks if (w := words(kw)))
        )
        object.__setattr__(
            self, "_overrides", {" ".join(words(k)): v for k, v in self.overrides.items()}
        )
        # name -> (matched, slot): a catalog has few distinct type and category names, and
        # every product (ingest, documents, looks) asks for them again
        object.__setattr__(self, "_memo", {})

    @classmethod
    def from_config(
        cls,
        *,
        slots: Mapping[str, str] | None = None,
        keywords: Mapping[str, Iterable[str]] | None = None,
        not_in_looks: Iterable[str] | None = None,
        in_looks: Iterable[str] | None = None,
    ) -> Taxonomy:
        """Defaults plus a mapping file's ``[taxonomy]`` section."""
        merged = {k: list(v) for k, v in DEFAULT_KEYWORDS.items()}
        for slot, kws in (keywords or {}).items():
            key = canonical_slot(slot) or NO_SLOT
            merged.setdefault(key, []).extend(str(k) for k in kws)
        overrides = {str(name): canonical_slot(slot) for name, slot in (slots or {}).items()}
        excluded = [*DEFAULT_NOT_IN_LOOKS, *(not_in_looks or ())]
        allowed = {" ".join(words(k)) for k in (in_looks or ())}
        excluded = [k for k in excluded if " ".join(words(k)) not in allowed]
        return cls(keywords=merged, overrides=overrides, not_in_looks=tuple(excluded))

    # ------------------------------------------------------------------ rules
    def match(self, name: str | None) -> tuple[bool, str | None]:
        """(matched, slot) for one name; the keyword ending last wins (then the longest)."""
        if not name:
            return False, None
        memo: dict[str, tuple[bool, str | None]] = self._memo  # type: ignore[attr-defined]
        if name not in memo:
            memo[name] = self._match(name)
        return memo[name]

    def _match(self, name: str) -> tuple[bool, str | None]:
        w = words(name)
        if not w:
            return False, None
        key = " ".join(w)
        overrides: dict[str, str | None] = self._overrides  # type: ignore[attr-defined]
        if key in overrides:
            return True, overrides[key]
        best: tuple[int, int] | None = None
        slot: str | None = None
        for kw, target in self._rules:  # type: ignore[attr-defined]
            n = len(kw)
            for start in range(len(w) - n + 1):
                if w[start : start + n] == kw:
                    rank = (start + n, n)
                    if best is None or rank > best:
                        best, slot = rank, target
        return best is not None, slot

    def slot_for_fields(self, *names: str | None) -> str | None:
        """The slot from names most specific first (type, then category levels)."""
        for name in names:
            matched, slot = self.match(name)
            if matched:
                return slot
        return None

    def slot_for(self, product: Any) -> str | None:
        """The slot of a product (a Product, a document or any object with the fields)."""
        return self.slot_for_fields(*(_field(product, f) for f in SLOT_FIELDS))

    def in_looks(self, article_type: str | None) -> bool:
        """False for types that have a slot but are never part of a look (socks, swimwear)."""
        if not article_type:
            return True
        w = words(article_type)
        for kw in self._not_in_looks:  # type: ignore[attr-defined]
            n = len(kw)
            if any(w[i : i + n] == kw for i in range(len(w) - n + 1)):
                return False
        return True

    def look_slot(self, product: Any) -> str | None:
        """The slot of a product when it can be part of a look, else ``None``."""
        stored = _field(product, "slot")
        slot = str(stored) if stored else self.slot_for(product)
        if slot is None or not self.in_looks(_field(product, "article_type")):
            return None
        return slot

    def report(self, products: Iterable[Any]) -> SlotReport:
        n = 0
        by_slot: Counter[str] = Counter()
        unmapped: Counter[str] = Counter()
        for p in products:
            n += 1
            slot = self.slot_for(p)
            if slot is None:
                unmapped[str(_field(p, "article_type") or "(no type)")] += 1
            else:
                by_slot[slot] += 1
        return SlotReport(n, dict(by_slot), dict(unmapped))


DEFAULT_TAXONOMY = Taxonomy()


def conflicts(a: str, b: str) -> bool:
    """True when slots ``a`` and ``b`` cannot both be in one look (one-piece vs top/bottom)."""
    return b in CONFLICTS.get(a, frozenset())


def complementary_slots(slot: str | None) -> list[str]:
    """The slots that can complete a look around an item of ``slot`` (in :data:`SLOTS` order).

    Accessories complement everything, including other accessories; every other slot holds one
    item, so it is not its own complement. ``None`` (unknown slot) -> every slot.
    """
    if slot is None:
        return list(SLOTS)
    return [s for s in SLOTS if (s != slot or s == "accessory") and not conflicts(slot, s)]
