"""Mine stylists' style notes for the complementary items they name (:func:`mine_note`).

A style note such as "Team it with dark jeans and loafers" names article types (through a
lexicon of synonyms -> catalog article types, :data:`LEXICON`) and sometimes their colours
(:data:`COLOURS`). :func:`mine_note` finds those mentions in the *pairing clauses* of the note
(the text after a cue such as "team", "pair", "wear ... with", "style it with"), skipping
mentions of the item itself ("this T-shirt"). :mod:`engine.train.datagen.looks_mining`
assembles looks from them; see docs/LOOKS.md for the method and its limits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SHOE_TYPES = (
    "Casual Shoes",
    "Sports Shoes",
    "Formal Shoes",
    "Heels",
    "Flats",
    "Sandals",
    "Flip Flops",
)
_BAG_TYPES = ("Handbags", "Backpacks", "Clutches", "Messenger Bag", "Laptop Bag", "Duffel Bag")
_JEWELLERY_TYPES = ("Earrings", "Necklace and Chains", "Pendant", "Bangle", "Bracelet", "Ring")

# (regular expression over lower-case text, catalog article types). Longer matches win over
# shorter overlapping ones ("track pants" over "pants", "t-shirt" over "shirt").
LEXICON: tuple[tuple[str, tuple[str, ...]], ...] = (
    # tops
    (r"t-? ?shirts?|tees?|polos?(?! neck)|polo t-?shirts?", ("Tshirts",)),
    (r"(?:formal |casual |denim |linen |checked |plain )?shirts?", ("Shirts",)),
    (
        r"(?<!on )(?<!high )(?:crop |tank |tube |peplum )?tops?"
        r"(?! (?:of|it|off|up|notch|quality|brands?|choice|pick|our|the|boots|shoes|sneakers)\b)"
        r"|blouses?",
        ("Tops",),
    ),
    (r"kurtas?", ("Kurtas",)),
    (r"kurtis?", ("Kurtis",)),
    (r"tunics?", ("Tunics",)),
    (r"sweaters?|pullovers?|cardigans?|jumpers?", ("Sweaters",)),
    (r"sweatshirts?|hoodies?", ("Sweatshirts",)),
    # outerwear
    (
        r"(?:denim |leather |bomber |biker )?jackets?|(?:trench |pea |over)?coats?",
        ("Jackets",),
    ),
    (r"blazers?|suit jackets?", ("Blazers",)),
    (r"nehru jackets?", ("Nehru Jackets",)),
    (r"waistcoats?", ("Waistcoat",)),
    (r"shrugs?", ("Shrug",)),
    # bottoms
    (r"(?:denim )?jeans|denims|denim(?! (?:jackets?|shorts|skirts?|shirts?))", ("Jeans",)),
    (
        r"(?:formal |casual |cotton |linen )?(?:trousers?|pants|slacks)|chinos?|khakis|"
        r"cargos|cargo pants|palazzos?",
        ("Trousers",),
    ),
    (r"(?:denim |cargo )?shorts|bermudas", ("Shorts",)),
    (r"(?:denim |mini |maxi |pencil )?skirts?", ("Skirts",)),
    (r"leggings", ("Leggings",)),
    (r"jeggings", ("Jeggings",)),
    (r"churidars?|churidaar", ("Churidar",)),
    (r"salwars?|salwaar", ("Salwar",)),
    (r"patialas?", ("Patiala",)),
    (r"capris?|three-?fourths|3/4ths", ("Capris",)),
    (r"track ?pants|tracks|track bottoms|joggers|trackies", ("Track Pants",)),
    # one-piece
    (
        r"(?<!to )(?:maxi |mini |shift |party )?dress(?:es)?"
        r"(?! (?:it|up|down|this|them|yourself)\b)|(?:evening )?gowns?",
        ("Dresses",),
    ),
    (r"sarees?|saris?", ("Sarees",)),
    (r"jumpsuits?", ("Jumpsuit",)),
    # shoes
    (
        r"loafers|moccasins|boat shoes|slip-?ons|espadrilles|sneakers|trainers|canvas shoes|"
        r"casual shoes|plimsolls|boots|ankle boots",
        ("Casual Shoes",),
    ),
    (r"sports shoes|running shoes|training shoes|sport shoes", ("Sports Shoes",)),
    (
        r"formal shoes|lace-?ups|brogues|oxfords|derbys|derbies|monk ?straps|dress shoes",
        ("Formal Shoes",),
    ),
    (
        r"(?:high |kitten |block )?heels|pumps|stilettos|wedges|peep-? ?toes|platforms",
        ("Heels",),
    ),
    (r"(?:ballet )?flats|ballerinas|juttis|mojaris|mojris", ("Flats",)),
    (r"(?:ethnic |strappy )?sandals|gladiators|kolhapuris", ("Sandals",)),
    (r"flip-? ?flops|slippers", ("Flip Flops",)),
    (r"shoes|footwear", _SHOE_TYPES),
    # bags
    (
        r"hand ?bags?|totes?|tote bags?|satchels?|shoulder bags?|sling bags?|hobo bags?|purses?",
        ("Handbags",),
    ),
    (r"clutch(?:es)?(?: purses?| bags?)?", ("Clutches",)),
    (r"backpacks?|rucksacks?", ("Backpacks",)),
    (r"laptop bags?", ("Laptop Bag",)),
    (r"messenger bags?", ("Messenger Bag",)),
    (r"duffel bags?|duffle bags?|gym bags?", ("Duffel Bag",)),
    (r"bags?", _BAG_TYPES),
    # accessories
    (
        r"(?:wrist ?)?watch(?:es)?(?! (?:heads|out|as|them|it|the|you|your|people|eyes|over)\b)"
        r"|timepieces?",
        ("Watches",),
    ),
    (r"sunglasses|shades|aviators|sunnies|wayfarers", ("Sunglasses",)),
    (r"belts?", ("Belts",)),
    (
        r"(?:neck)?ties(?! (?:it|up|them|in|together|back|at|around)\b)|neckties?|(?<=a )tie",
        ("Ties",),
    ),
    (r"cuff ?links", ("Cufflinks",)),
    (r"scarf|scarves", ("Scarves",)),
    (r"stoles?", ("Stoles",)),
    (r"mufflers?", ("Mufflers",)),
    (r"caps?(?! (?:sleeves?|toe)\b)|hats?|baseball caps?", ("Caps",)),
    (r"wallets?", ("Wallets",)),
    (r"earrings|ear ?rings|studs|danglers|jhumkas|hoops", ("Earrings",)),
    (r"necklaces?|neck ?pieces?|chains?", ("Necklace and Chains",)),
    (r"pendants?", ("Pendant",)),
    (r"bangles?|kadas?", ("Bangle",)),
    (r"bracelets?", ("Bracelet",)),
    (r"rings?", ("Ring",)),
    (r"dupattas?", ("Dupatta",)),
    (r"jewell?e?ry|jewelry", _JEWELLERY_TYPES),
)

# The slot of every article type the lexicon names (as engine.documents.slot_for maps them).
TYPE_SLOTS: dict[str, str] = {
    **dict.fromkeys(
        ("Tshirts", "Shirts", "Tops", "Kurtas", "Kurtis", "Tunics", "Sweaters", "Sweatshirts"),
        "top",
    ),
    **dict.fromkeys(("Jackets", "Blazers", "Nehru Jackets", "Waistcoat", "Shrug"), "outerwear"),
    **dict.fromkeys(
        (
            "Jeans",
            "Trousers",
            "Shorts",
            "Skirts",
            "Leggings",
            "Jeggings",
            "Churidar",
            "Salwar",
            "Patiala",
            "Capris",
            "Track Pants",
        ),
        "bottom",
    ),
    **dict.fromkeys(("Dresses", "Sarees", "Jumpsuit"), "one-piece"),
    **dict.fromkeys(_SHOE_TYPES, "shoes"),
    **dict.fromkeys(_BAG_TYPES, "bag"),
    **dict.fromkeys(
        (
            "Watches",
            "Sunglasses",
            "Belts",
            "Ties",
            "Cufflinks",
            "Scarves",
            "Stoles",
            "Mufflers",
            "Caps",
            "Wallets",
            "Dupatta",
            *_JEWELLERY_TYPES,
        ),
        "accessory",
    ),
}

# Colour words -> acceptable catalog base colours (longest phrases first when matching).
COLOURS: dict[str, tuple[str, ...]] = {
    "navy blue": ("Navy Blue",),
    "navy": ("Navy Blue",),
    "dark blue": ("Navy Blue", "Blue"),
    "indigo": ("Navy Blue", "Blue"),
    "light blue": ("Blue",),
    "sky blue": ("Blue",),
    "blue": ("Blue", "Navy Blue"),
    "dark": ("Navy Blue", "Black", "Charcoal", "Blue"),
    "black": ("Black",),
    "white": ("White", "Off White"),
    "off white": ("Off White", "White", "Cream"),
    "off-white": ("Off White", "White", "Cream"),
    "cream": ("Cream", "Off White"),
    "beige": ("Beige", "Cream", "Khaki"),
    "khaki": ("Khaki", "Beige"),
    "tan": ("Tan", "Brown"),
    "brown": ("Brown", "Tan", "Coffee Brown"),
    "grey": ("Grey", "Grey Melange", "Charcoal"),
    "gray": ("Grey", "Grey Melange", "Charcoal"),
    "charcoal": ("Charcoal", "Grey"),
    "red": ("Red",),
    "maroon": ("Maroon", "Burgundy"),
    "burgundy": ("Burgundy", "Maroon"),
    "green": ("Green", "Olive", "Sea Green"),
    "olive": ("Olive", "Green"),
    "pink": ("Pink", "Peach", "Rose"),
    "peach": ("Peach", "Pink"),
    "yellow": ("Yellow", "Mustard"),
    "mustard": ("Mustard", "Yellow"),
    "orange": ("Orange", "Rust"),
    "purple": ("Purple", "Lavender", "Magenta"),
    "lavender": ("Lavender", "Purple"),
    "gold": ("Gold",),
    "golden": ("Gold",),
    "silver": ("Silver", "Steel"),
    "metallic": ("Gold", "Silver", "Metallic", "Bronze", "Copper"),
    "nude": ("Nude", "Skin", "Beige"),
    "neutral": ("Beige", "Cream", "Off White", "White", "Grey", "Khaki", "Tan", "Nude"),
    "teal": ("Teal", "Turquoise Blue"),
    "turquoise": ("Turquoise Blue", "Teal"),
}

_CUES = re.compile(
    r"\b(?:team(?:ed|ing|s)?|(?<!this )(?<!a )(?<!the )(?<!that )pair(?:ed|ing|s)?(?! of)|"
    r"wear(?:ing|s)?|worn|match(?:ed|ing|es)?|carry|dressed (?:up )?in|"
    r"dress(?:ed)? (?:it |this |them )?(?:up|down)|"
    r"combine[sd]?|combining|club(?:bed|bing|s)?|styled|styling|"
    r"(?<!in )style(?= (?:it|this|them|these|that|with|up|your)\b)|"
    r"accessori[sz](?:e|ed|ing)|"
    r"layer(?:ed|ing|s)?|complete (?:the|your|this) look|go(?:es)? (?:well |great |best |"
    r"perfectly |nicely )?with|looks? (?:great|good|best|smart|stunning|fabulous|perfect)"
    r" (?:with|when)|partner(?:ed)?|coordinate[sd]?|mix(?:ed)?|throw on|slip on|don)\b"
)
_SENTENCES = re.compile(r"(?<=[.!?;])\s+|\n+")
_SELF_WORDS = frozenset({"this", "these", "that", "its"})
_SELF_STOPS = frozenset(
    {
        "with",
        "and",
        "or",
        "to",
        "in",
        "a",
        "an",
        "the",
        "for",
        "over",
        "under",
        "on",
        "by",
        "your",
        "some",
        "it",
        "them",
        "up",
        "any",
        "as",
        "like",
        "plus",
    }
)
_TOKEN = re.compile(r"[\w'-]+|[^\w\s]")
_COLOUR_RE = re.compile(
    r"\b(" + "|".join(sorted((re.escape(c) for c in COLOURS), key=len, reverse=True)) + r")\b"
)
_WINDOW_STOP = re.compile(r"[,;:()]|\b(?:and|or|with|to|for|in|on|over|under|by)\b")
_COMPILED = tuple((re.compile(r"\b(?:" + pat + r")\b"), types) for pat, types in LEXICON)


@dataclass(frozen=True)
class Mention:
    """One complementary item named in a note: its types, slot, colours and position."""

    phrase: str
    article_types: tuple[str, ...]
    slot: str
    colours: tuple[str, ...]
    start: int


def pairing_clauses(note: str) -> list[tuple[int, str]]:
    """(offset, text) of the parts of each sentence that follow a pairing cue (lower case)."""
    text = note.lower()
    out: list[tuple[int, str]] = []
    pos = 0
    for sentence in _SENTENCES.split(text):
        start = text.find(sentence, pos)
        pos = start + len(sentence)
        cue = _CUES.search(sentence)
        if cue is not None:
            out.append((start + cue.end(), sentence[cue.end() :]))
    return out


def _is_self_reference(before: str) -> bool:
    """'this (pair of) striped T-shirt': the item itself, not a complement."""
    tokens = _TOKEN.findall(before)[-4:]
    for tok in reversed(tokens):
        if tok in _SELF_WORDS:
            return True
        if tok in _SELF_STOPS or not tok[0].isalnum():
            return False
    return False


def _colours_before(clause: str, start: int) -> tuple[str, ...]:
    """Colour words in the few words just before a mention ('a pair of dark blue jeans')."""
    window = clause[max(0, start - 30) : start]
    stops = list(_WINDOW_STOP.finditer(window))
    if stops:
        window = window[stops[-1].end() :]
    colours: list[str] = []
    for m in _COLOUR_RE.finditer(window):
        for c in COLOURS[m.group(1)]:
            if c not in colours:
                colours.append(c)
    # "dark blue" also matched "blue" and "dark": the longest phrase decides
    longest = max((m.group(1) for m in _COLOUR_RE.finditer(window)), key=len, default=None)
    if longest is not None and " " in longest:
        return COLOURS[longest]
    return tuple(colours)


def mine_note(note: str | None) -> list[Mention]:
    """The complementary article types (and colours) a style note names, in order."""
    if not note:
        return []
    mentions: list[Mention] = []
    lowered = note.lower()
    for offset, clause in pairing_clauses(note):
        found: list[tuple[int, int, tuple[str, ...]]] = []
        for regex, types in _COMPILED:
            for m in regex.finditer(clause):
                found.append((m.start(), m.end(), types))
        found.sort(key=lambda t: (t[0], -(t[1] - t[0])))
        taken_end = -1
        for start, end, types in found:
            if start < taken_end:
                continue
            taken_end = end
            if _is_self_reference(lowered[: offset + start]):
                continue
            slot = TYPE_SLOTS.get(types[0])
            if slot is None:
                continue
            mentions.append(
                Mention(
                    phrase=clause[start:end],
                    article_types=types,
                    slot=slot,
                    colours=_colours_before(clause, start),
                    start=offset + start,
                )
            )
    return mentions


def _check_lexicon() -> None:
    missing = {t for _, types in LEXICON for t in types if t not in TYPE_SLOTS}
    if missing:  # pragma: no cover - a programming error caught by the tests
        raise AssertionError(f"lexicon types without a slot: {sorted(missing)}")
