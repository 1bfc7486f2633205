"""Evaluation queries with relevance judgments derived from catalog attributes (fixed seeds).

Everything here is deterministic for a given ``seed``: items are ordered by
``sha1(f"{namespace}:{seed}:{id}")`` (independent of input order and ``PYTHONHASHSEED``), and
per-item choices use ``random.Random`` seeded with a string of the same kind.

Attribute queries ("black striped tshirts men")
    A query names an article type and a base colour, optionally a pattern (``attributes.Pattern``)
    and a gender. Graded relevance of a catalog item (an attribute the query does not name counts
    as matching; a ``Unisex`` item matches a ``Men`` or ``Women`` query):

    ===  ==================================================================================
    3    article type, colour, pattern and gender all match
    2    article type, colour and gender match; the pattern differs or is unknown
    1    article type and colour match but the gender differs; or article type, pattern and
         gender match but the colour differs; or same ``sub_category`` (other article type)
         with colour, pattern and gender matching (e.g. a black shirt for "black tshirts")
    0    anything else
    ===  ==================================================================================

    Colours compare ``base_colour`` exactly (case-insensitive; ``Navy Blue`` is not ``Blue``);
    placeholder values such as ``NA`` count as unknown.

"This but in <colour>" queries
    A source item (the query image) and a target colour that other items of its article type
    have. Two judgments over the catalog, the source itself excluded:

    * visual relevance: same article type -> 1, +1 same gender, +1 same known pattern (max 3);
    * text relevance: ``base_colour`` is the target -> 2, ``colour1``/``colour2`` is -> 1.

    nDCG against each, and their geometric mean, are the ``compose_*`` metrics
    (:func:`evaluation.metrics.compose_ndcg`).
"""

from __future__ import annotations

import hashlib
import math
import random
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from engine.catalog import Product
from engine.catalog.gender import gender_ok
from engine.errors import InvalidInput
from evaluation.datasets import known

# --------------------------------------------------------------------------- helpers


def _order_key(namespace: str, seed: int, item_id: str) -> str:
    return hashlib.sha1(f"{namespace}:{seed}:{item_id}".encode()).hexdigest()


def _rng(namespace: str, seed: int, item_id: str) -> random.Random:
    return random.Random(f"{namespace}:{seed}:{item_id}")


def _norm(value: str | None) -> str | None:
    v = known(value)
    return v.strip().lower() if v else None


def pattern_of(p: Product) -> str | None:
    """The item's pattern (``attributes["Pattern"]``), or None when unknown."""
    return known(p.attributes.get("Pattern"))


def _per_type_cap(n: int, max_share_per_type: float | None) -> int:
    if max_share_per_type is None:
        return n
    return max(1, math.ceil(n * max_share_per_type))


class _Attrs(NamedTuple):
    """The normalised (lower-case, placeholders -> None) attributes judgments compare."""

    article_type: str | None
    sub_category: str | None
    colour: str | None
    pattern: str | None
    gender: str | None


def _attrs(p: Product) -> _Attrs:
    return _Attrs(
        _norm(p.article_type),
        _norm(p.sub_category),
        _norm(p.base_colour),
        _norm(pattern_of(p)),
        _norm(p.gender),
    )


class _Index:
    """Products grouped by normalised article type, sub-category and colour (any of the three
    colour fields), so judgments only look at the items that can be relevant."""

    def __init__(self, products: Iterable[Product]) -> None:
        self.by_type: dict[str, list[Product]] = defaultdict(list)
        self.by_sub: dict[str, list[Product]] = defaultdict(list)
        self.by_colour: dict[str, list[Product]] = defaultdict(list)
        self.attrs: dict[str, _Attrs] = {}
        for p in products:
            self.attrs[p.id] = _attrs(p)
            if (t := _norm(p.article_type)) is not None:
                self.by_type[t].append(p)
            if (sub := _norm(p.sub_category)) is not None:
                self.by_sub[sub].append(p)
            for c in {_norm(p.base_colour), _norm(p.colour1), _norm(p.colour2)} - {None}:
                self.by_colour[str(c)].append(p)

    def candidates(self, article_type: str, sub_category: str | None) -> list[Product]:
        """Items of the type, then (others of) the sub-category: each at most once."""
        out = list(self.by_type.get(article_type.lower(), []))
        if sub_category is not None:
            t = article_type.lower()
            out += [
                p for p in self.by_sub.get(sub_category.lower(), []) if _norm(p.article_type) != t
            ]
        return out


# --------------------------------------------------------------------------- attribute queries

PATTERN_WORDS = {
    "solid": "solid",
    "striped": "striped",
    "checked": "checked",
    "printed": "printed",
    "self design": "self design",
    "colourblocked": "colourblocked",
    "embellished": "embellished",
    "washed": "washed",
}
GENDER_WORDS = {"men": "men", "women": "women", "boys": "boys", "girls": "girls"}
POSSESSIVE = {"men": "men's", "women": "women's", "boys": "boys'", "girls": "girls'"}


@dataclass(frozen=True, eq=False)
class AttributeQuery:
    """A shopper's attribute phrase and its graded judgments (item id -> gain 1..3)."""

    qid: str
    text: str
    article_type: str
    colour: str
    pattern: str | None
    gender: str | None
    source_id: str
    relevance: dict[str, int] = field(default_factory=dict)

    def relevant(self, min_gain: int = 1) -> set[str]:
        return {i for i, g in self.relevance.items() if g >= min_gain}

    def to_dict(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "text": self.text,
            "article_type": self.article_type,
            "colour": self.colour,
            "pattern": self.pattern,
            "gender": self.gender,
            "source_id": self.source_id,
            "relevance": self.relevance,
        }


def _graded(
    a: _Attrs,
    article_type: str,
    colour: str,
    pattern: str | None,
    gender: str | None,
    sub_category: str | None,
) -> int:
    type_ok = a.article_type == article_type
    colour_ok = a.colour == colour
    pattern_ok = pattern is None or a.pattern == pattern
    gender_fits = gender_ok(gender, a.gender)
    if type_ok and colour_ok:
        if not gender_fits:
            return 1
        return 3 if pattern_ok else 2
    if type_ok and pattern_ok and gender_fits:
        return 1  # right kind of item, wrong colour
    same_sub = sub_category is not None and not type_ok and a.sub_category == sub_category
    if same_sub and colour_ok and pattern_ok and gender_fits:
        return 1
    return 0


def _lower(value: str | None) -> str | None:
    return value.strip().lower() if value is not None else None


def attribute_gain(
    p: Product,
    article_type: str,
    colour: str,
    pattern: str | None = None,
    gender: str | None = None,
    sub_category: str | None = None,
) -> int:
    """Graded relevance (0..3) of ``p`` for an attribute query; scheme in the module docstring."""
    return _graded(
        _attrs(p),
        article_type.strip().lower(),
        colour.strip().lower(),
        _lower(pattern),
        _lower(gender),
        _lower(sub_category),
    )


def attribute_relevance(
    products: Iterable[Product] | _Index,
    article_type: str,
    colour: str,
    pattern: str | None = None,
    gender: str | None = None,
    sub_category: str | None = None,
) -> dict[str, int]:
    """Judgments of every product with gain > 0."""
    index = products if isinstance(products, _Index) else _Index(products)
    q = (
        article_type.strip().lower(),
        colour.strip().lower(),
        _lower(pattern),
        _lower(gender),
        _lower(sub_category),
    )
    out: dict[str, int] = {}
    for p in index.candidates(article_type, sub_category):
        g = _graded(index.attrs[p.id], *q)
        if g > 0:
            out[p.id] = g
    return out


def render_attribute_text(
    article_type: str,
    colour: str,
    pattern: str | None,
    gender: str | None,
    template: int = 0,
) -> str:
    """Phrase an attribute query; templates 0..2 (word order a shopper might type)."""
    t = article_type.lower()
    c = colour.lower()
    pat = PATTERN_WORDS.get(pattern.lower(), pattern.lower()) if pattern else ""
    gen = GENDER_WORDS.get(gender.lower(), gender.lower()) if gender else ""
    if template == 1 and gen:
        parts = [POSSESSIVE.get(gen, gen), c, pat, t]
    elif template == 2:
        parts = [pat, t, "in", c] + (["for", gen] if gen else [])
    else:
        parts = [c, pat, t, gen]
    return " ".join(w for w in parts if w)


def attribute_queries(
    products: Sequence[Product],
    n: int = 100,
    seed: int = 0,
    *,
    sources: Sequence[Product] | None = None,
    min_exact: int = 1,
    max_share_per_type: float | None = 0.1,
    p_pattern: float = 0.5,
    p_gender: float = 0.6,
    templates: Sequence[int] = (0, 0, 1, 2),
) -> list[AttributeQuery]:
    """Up to ``n`` distinct attribute queries judged against ``products``.

    Each query is seeded from a source item (from ``sources``, default ``products``): its
    article type and colour always, its pattern with probability ``p_pattern`` and its gender
    with probability ``p_gender``. ``min_exact``: the least number of gain-3 items a query
    must have in ``products``. ``max_share_per_type`` caps one article type's share of the
    queries (None: no cap). Fewer than ``n`` queries come back when the catalog runs out.
    """
    if n < 0:
        raise InvalidInput("n must be >= 0")
    pool = list(products)
    index = _Index(pool)
    src = [
        p
        for p in (pool if sources is None else sources)
        if known(p.article_type) and known(p.base_colour)
    ]
    src.sort(key=lambda p: _order_key("attr", seed, p.id))
    cap = _per_type_cap(n, max_share_per_type)
    per_type: Counter[str] = Counter()
    seen: set[tuple[str, str, str | None, str | None]] = set()
    out: list[AttributeQuery] = []
    for p in src:
        if len(out) >= n:
            break
        atype, colour = str(p.article_type), str(p.base_colour)
        if per_type[atype] >= cap:
            continue
        rng = _rng("attr", seed, p.id)
        pattern = pattern_of(p) if rng.random() < p_pattern else None
        g = _norm(p.gender)
        gender = str(p.gender) if g in GENDER_WORDS and rng.random() < p_gender else None
        template = rng.choice(list(templates))
        key = (atype.lower(), colour.lower(), _norm(pattern), _norm(gender))
        if key in seen:
            continue
        seen.add(key)
        rel = attribute_relevance(index, atype, colour, pattern, gender, p.sub_category)
        if sum(1 for v in rel.values() if v >= 3) < min_exact:
            continue
        per_type[atype] += 1
        out.append(
            AttributeQuery(
                qid=f"attr-{len(out):04d}",
                text=render_attribute_text(atype, colour, pattern, gender, template),
                article_type=atype,
                colour=colour,
                pattern=pattern,
                gender=gender,
                source_id=p.id,
                relevance=rel,
            )
        )
    return out


# --------------------------------------------------------------------------- "this but in <colour>"

COMPOSE_TEMPLATES = ("this but in {c}", "in {c}", "same but {c}", "this in {c}")


@dataclass(frozen=True, eq=False)
class ComposeQuery:
    """Query image ``source_id`` + modifier text; two graded judgments (id -> gain)."""

    qid: str
    source_id: str
    target_colour: str
    text: str
    visual_relevance: dict[str, int] = field(default_factory=dict)
    text_relevance: dict[str, int] = field(default_factory=dict)

    def both_relevant(self) -> set[str]:
        """Items relevant on both sides (the right kind of item in the asked-for colour)."""
        return set(self.visual_relevance) & set(self.text_relevance)

    def to_dict(self) -> dict[str, Any]:
        return {
            "qid": self.qid,
            "source_id": self.source_id,
            "target_colour": self.target_colour,
            "text": self.text,
            "visual_relevance": self.visual_relevance,
            "text_relevance": self.text_relevance,
        }


def visual_gain(source: Product, p: Product) -> int:
    """Same article type -> 1, +1 same gender (Unisex matches), +1 same known pattern."""
    if p.id == source.id or _norm(p.article_type) != _norm(source.article_type):
        return 0
    if _norm(p.article_type) is None:
        return 0
    gain = 1
    sg = _norm(source.gender)
    if sg is not None and gender_ok(sg, p.gender):
        gain += 1
    sp = _norm(pattern_of(source))
    if sp is not None and sp == _norm(pattern_of(p)):
        gain += 1
    return gain


def text_gain(target_colour: str, p: Product) -> int:
    """``base_colour`` is the target -> 2; ``colour1``/``colour2`` is -> 1; else 0."""
    c = target_colour.lower()
    if _norm(p.base_colour) == c:
        return 2
    if c in (_norm(p.colour1), _norm(p.colour2)):
        return 1
    return 0


def compose_queries(
    products: Sequence[Product],
    n: int = 100,
    seed: int = 0,
    *,
    sources: Sequence[Product] | None = None,
    min_target: int = 1,
    max_share_per_type: float | None = 0.1,
    templates: Sequence[str] = COMPOSE_TEMPLATES,
) -> list[ComposeQuery]:
    """Up to ``n`` "this but in <colour>" queries judged against ``products``.

    Sources (default: ``products``; pass photographed items, the source is the query image)
    need an article type and a known colour. The target colour is drawn uniformly from the other
    colours that at least ``min_target`` items of the same article type have in ``products``
    (so every query has an item relevant on both sides).
    """
    if n < 0:
        raise InvalidInput("n must be >= 0")
    pool = list(products)
    index = _Index(pool)
    colours_by_type: dict[str, Counter[str]] = defaultdict(Counter)
    for p in pool:
        t, c = _norm(p.article_type), known(p.base_colour)
        if t and c:
            colours_by_type[t][c] += 1
    src = [
        p
        for p in (pool if sources is None else sources)
        if known(p.article_type) and known(p.base_colour)
    ]
    src.sort(key=lambda p: _order_key("compose", seed, p.id))
    cap = _per_type_cap(n, max_share_per_type)
    per_type: Counter[str] = Counter()
    out: list[ComposeQuery] = []
    for s in src:
        if len(out) >= n:
            break
        t = str(_norm(s.article_type))
        if per_type[t] >= cap:
            continue
        own = _norm(s.base_colour)
        options = sorted(
            c for c, cnt in colours_by_type[t].items() if c.lower() != own and cnt >= min_target
        )
        if not options:
            continue
        rng = _rng("compose", seed, s.id)
        target = rng.choice(options)
        text = rng.choice(list(templates)).format(c=target.lower())
        visual = {p.id: g for p in index.by_type.get(t, []) if (g := visual_gain(s, p)) > 0}
        textual = {
            p.id: g
            for p in index.by_colour.get(target.lower(), [])
            if p.id != s.id and (g := text_gain(target, p)) > 0
        }
        per_type[t] += 1
        out.append(
            ComposeQuery(
                qid=f"compose-{len(out):04d}",
                source_id=s.id,
                target_colour=target,
                text=text,
                visual_relevance=visual,
                text_relevance=textual,
            )
        )
    return out
