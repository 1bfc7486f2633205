"""What every product search request carries besides its query: the hard filters
(:class:`Filters`) as clauses, the soft attribute filter (:class:`SoftFilter`) and the
``_source`` selection (:class:`Source`), plus the parameters of the stored search templates.
Re-exported by :mod:`engine.queries`, whose body builders use them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from engine.result_fields import storable, stored_names

JSON = dict[str, Any]

# What a search hit returns (no vectors, no attribute probabilities).
RESULT_FIELDS: tuple[str, ...] = (
    "id",
    "title",
    "brand",
    "gender",
    "master_category",
    "sub_category",
    "article_type",
    "base_colour",
    "colours",
    "usage",
    "season",
    "slot",
    "price",
    "discounted_price",
    "in_stock",
    "source_image_urls",
    "image_urls",  # documents indexed before source_image_urls
)

DEFAULT_FLOOR = 0.05


@dataclass(frozen=True)
class Filters:
    """Hard filters. Multi-valued fields match any of their values (``terms``)."""

    gender: tuple[str, ...] = ()
    article_type: tuple[str, ...] = ()
    colour: tuple[str, ...] = ()
    brand: tuple[str, ...] = ()
    min_price: float | None = None
    max_price: float | None = None
    in_stock: bool | None = None
    exclude_ids: tuple[str, ...] = ()

    def with_article_type(self, article_type: str) -> Filters:
        """These filters restricted to one article type (the predicted category)."""
        return replace(self, article_type=(article_type,))

    def excluding(self, ids: Sequence[str]) -> Filters:
        """These filters with more ids excluded (order kept, duplicates dropped)."""
        return replace(self, exclude_ids=tuple(dict.fromkeys([*self.exclude_ids, *ids])))

    @property
    def empty(self) -> bool:
        return not (filter_clauses(self) or must_not_clauses(self))


@dataclass(frozen=True)
class SoftFilter:
    """Attribute probability fields (``attr_prob.<attr>.<value>``) to favour and to avoid."""

    wanted: tuple[str, ...] = ()
    unwanted: tuple[str, ...] = ()
    floor: float = DEFAULT_FLOOR

    @property
    def empty(self) -> bool:
        return not self.wanted and not self.unwanted


@dataclass(frozen=True)
class Source:
    """What a hit returns: result fields plus extra fields (vectors for explain).

    ``stored``: the index stores these fields (:mod:`engine.result_fields`); they are then
    fetched as ``stored_fields`` with ``_source`` off, unless one of them is not stored
    (vectors; attribute probabilities unless ``stored_probabilities``), which falls back to
    ``_source`` includes.
    """

    includes: tuple[str, ...] = RESULT_FIELDS
    extra: tuple[str, ...] = field(default=())
    stored: bool = False
    # the index stores the attribute probabilities too (``attr_prob`` read by pattern)
    stored_probabilities: bool = False

    def fields(self) -> list[str]:
        return [*self.includes, *(f for f in self.extra if f not in self.includes)]

    def body(self) -> JSON:
        """The ``_source`` selection (includes)."""
        return {"includes": self.fields()}

    def fetch(self) -> JSON:
        """The body keys selecting what hits return: ``_source`` includes, or ``_source: false``
        plus ``stored_fields`` when :attr:`stored` and every field is stored."""
        wanted = self.fields()
        if self.stored and storable(wanted, self.stored_probabilities):
            return {"_source": False, "stored_fields": stored_names(wanted)}
        return {"_source": {"includes": wanted}}


def _terms(field_name: str, values: Sequence[str]) -> JSON:
    vals = [str(v) for v in values]
    if len(vals) == 1:
        return {"term": {field_name: vals[0]}}
    return {"terms": {field_name: vals}}


def range_clause(field_name: str, gte: Any = None, lte: Any = None) -> JSON | None:
    """``{"range": {field: {"gte": .., "lte": ..}}}`` with the bounds given; None without any."""
    if gte is None and lte is None:
        return None
    rng: JSON = {}
    if gte is not None:
        rng["gte"] = gte
    if lte is not None:
        rng["lte"] = lte
    return {"range": {field_name: rng}}


def ids_clause(ids: Sequence[str]) -> JSON:
    """Documents with these ``_id`` values (for ``must_not``: exclude them)."""
    return {"ids": {"values": list(ids)}}


def filter_clauses(f: Filters) -> list[JSON]:
    """The positive hard-filter clauses (empty list when there are none)."""
    out: list[JSON] = []
    if f.gender:
        out.append(_terms("gender", f.gender))
    if f.article_type:
        out.append(_terms("article_type", f.article_type))
    if f.colour:
        out.append(_terms("colours", f.colour))
    if f.brand:
        out.append(_terms("brand", f.brand))
    price = range_clause(
        "price",
        None if f.min_price is None else float(f.min_price),
        None if f.max_price is None else float(f.max_price),
    )
    if price is not None:
        out.append(price)
    if f.in_stock is not None:
        out.append({"term": {"in_stock": bool(f.in_stock)}})
    return out


def must_not_clauses(f: Filters) -> list[JSON]:
    return [ids_clause(f.exclude_ids)] if f.exclude_ids else []


def filter_query(f: Filters) -> JSON | None:
    """All hard filters as one ``bool`` query, or None when there are none."""
    pos, neg = filter_clauses(f), must_not_clauses(f)
    if not pos and not neg:
        return None
    b: JSON = {}
    if pos:
        b["filter"] = pos
    if neg:
        b["must_not"] = neg
    return {"bool": b}


def template_params(filters: Filters = Filters(), *, size: int = 20, k: int | None = None) -> JSON:
    """The hard-filter parameters of the stored search templates (single-valued fields only).

    The templates take one value per filter and one excluded id; a :class:`ValueError` says so
    when ``filters`` needs more.
    """
    p: JSON = {"size": int(size)}
    if k is not None:
        p["k"] = int(k)
    for name in ("gender", "article_type", "colour", "brand"):
        vals: tuple[str, ...] = getattr(filters, name)
        if len(vals) > 1:
            raise ValueError(f"stored templates take one {name}")
        if vals:
            p[name] = vals[0]
    if filters.min_price is not None:
        p["min_price"] = filters.min_price
    if filters.max_price is not None:
        p["max_price"] = filters.max_price
    if filters.in_stock:
        p["in_stock"] = True
    if len(filters.exclude_ids) > 1:
        raise ValueError("stored templates take one exclude_id")
    if filters.exclude_ids:
        p["exclude_id"] = filters.exclude_ids[0]
    return p
