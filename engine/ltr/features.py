"""Re-ranking features of a query's candidates: a documented, versioned list; pure extraction.

A :class:`Candidate` is one search result: its id, the original relevance ``score`` (whatever
ordered the result list: hybrid score, BM25 ...), the product document (the index fields of
``plugin_config/index_templates/products.json``, or :func:`doc_from_product` of a catalog row)
and optional query-dependent ``signals`` computed by the search service.

Every value feature may be missing (``NaN``): a signal the caller did not compute, a business
field the catalog lacks (no ``sales``, no ``clicks``), a non-finite number. Each value feature
has an ``<name>_missing`` indicator (1.0 when missing) and is imputed before it reaches a model
(:func:`impute`; the model stores its fill values, by default the training medians).

Feature set ``FEATURE_SET_VERSION`` (bump it when a definition below changes):

==================  ======  ===================================================================
name                source  definition
==================  ======  ===================================================================
relevance_norm      list    candidate score / max score of the list (scale-free; NaN if max<=0)
bm25                signal  raw BM25 score of the query text on the product
image_sim           signal  (1 + cos) / 2 between the query and the product photo embedding
text_sim            signal  (1 + cos) / 2 between the query and the product text embedding
joint_sim           signal  (1 + cos) / 2 in the joint image-text space
category_conf       signal  query->category probability of the candidate's category
soft_attr           signal  soft-attribute factor (product of wanted attribute probabilities)
doc_category_conf   doc     ``predicted_category_confidence`` of the product
log_price           doc     log10(1 + effective price); effective = discounted_price or price
rel_log_price       list    log_price - median log_price of the list (cheaper than the others < 0)
discount_pct        doc     100 * (price - discounted_price) / price, else ``discount_pct``
rating              doc     ``rating``
recency_days        doc     max(0, reference_time - added_at) / 86400 (added_at: epoch seconds)
log_popularity      doc     log10(1 + ``popularity``)
log_sales           doc     log10(1 + ``sales``)
log_clicks          doc     log10(1 + ``clicks``)
in_stock            doc     1.0 / 0.0
==================  ======  ===================================================================

``log10(1 + x)`` matches the ``log1p`` modifier of OpenSearch's ``field_value_factor`` so the
document features can be exported to the LTR plugin (:mod:`engine.train.ltr_export`); the similarity
signals use the same ``(1 + cos) / 2`` as Lucene's cosine k-NN score.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

import numpy as np

from engine.catalog import Product
from engine.result_fields import hit_source

FEATURE_SET_VERSION = "ltr-features-v1"

Source = Literal["list", "signal", "doc"]


@dataclass(frozen=True)
class FeatureDef:
    """One value feature: where it comes from and the value imputed when nothing better is known."""

    name: str
    source: Source
    description: str
    default_fill: float


VALUE_FEATURES: tuple[FeatureDef, ...] = (
    FeatureDef("relevance_norm", "list", "candidate score / max score of the list", 0.5),
    FeatureDef("bm25", "signal", "raw BM25 score of the query text", 0.0),
    FeatureDef("image_sim", "signal", "(1 + cos) / 2, query vs product photo", 0.5),
    FeatureDef("text_sim", "signal", "(1 + cos) / 2, query vs product text", 0.5),
    FeatureDef("joint_sim", "signal", "(1 + cos) / 2 in the joint space", 0.5),
    FeatureDef("category_conf", "signal", "query->category probability of its category", 0.0),
    FeatureDef("soft_attr", "signal", "soft-attribute factor in [0, 1]", 1.0),
    FeatureDef("doc_category_conf", "doc", "predicted_category_confidence", 1.0),
    FeatureDef("log_price", "doc", "log10(1 + effective price)", 3.0),
    FeatureDef("rel_log_price", "list", "log_price - median log_price of the list", 0.0),
    FeatureDef("discount_pct", "doc", "discount in percent (0..100)", 0.0),
    FeatureDef("rating", "doc", "rating", 0.0),
    FeatureDef("recency_days", "doc", "days since added_at", 365.0),
    FeatureDef("log_popularity", "doc", "log10(1 + popularity)", 0.0),
    FeatureDef("log_sales", "doc", "log10(1 + sales)", 0.0),
    FeatureDef("log_clicks", "doc", "log10(1 + clicks)", 0.0),
    FeatureDef("in_stock", "doc", "1 in stock, 0 not", 1.0),
)
VALUE_NAMES: tuple[str, ...] = tuple(f.name for f in VALUE_FEATURES)
MISSING_SUFFIX = "_missing"
MISSING_NAMES: tuple[str, ...] = tuple(f"{n}{MISSING_SUFFIX}" for n in VALUE_NAMES)
# The full, ordered feature list: value features, then one "is missing" indicator each.
FEATURES: tuple[str, ...] = VALUE_NAMES + MISSING_NAMES
SIGNAL_NAMES: tuple[str, ...] = tuple(f.name for f in VALUE_FEATURES if f.source == "signal")
DEFAULT_FILL: dict[str, float] = {f.name: f.default_fill for f in VALUE_FEATURES}
N_VALUES = len(VALUE_NAMES)

SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True)
class Candidate:
    """One result of a query to re-rank.

    ``score``: the original relevance score (higher is better). ``doc``: product fields.
    ``signals``: query-dependent values by name (see :data:`SIGNAL_NAMES`); absent = missing.
    """

    doc_id: str
    score: float
    doc: Mapping[str, Any] = field(default_factory=dict)
    signals: Mapping[str, float | None] = field(default_factory=dict)

    @classmethod
    def from_hit(
        cls, hit: Mapping[str, Any], signals: Mapping[str, float | None] | None = None
    ) -> Candidate:
        """From an OpenSearch hit (``_id``, ``_score``, ``_source``)."""
        score = hit.get("_score")
        return cls(
            doc_id=str(hit["_id"]),
            score=float(score) if score is not None else float("nan"),
            doc=hit_source(hit),
            signals=dict(signals or {}),
        )


# --------------------------------------------------------------------------- value helpers


def to_float(value: Any) -> float:
    """A finite float, or NaN (None, bools, strings that are not numbers, inf, NaN)."""
    kind = type(value)
    if kind is float:
        return value if math.isfinite(value) else float("nan")  # type: ignore[no-any-return]
    if kind is int:
        return float(value)
    if value is None or isinstance(value, bool):
        return float("nan")
    try:
        out = float(value)
    except (TypeError, ValueError):
        return float("nan")
    return out if math.isfinite(out) else float("nan")


def _log10p(value: Any) -> float:
    v = to_float(value)
    return math.log10(1.0 + v) if v == v and v >= 0 else float("nan")


def epoch_seconds(value: Any) -> float:
    """Epoch seconds from a number (seconds) or an ISO-8601 string; NaN when unparseable."""
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return float("nan")
        return dt.timestamp() if dt.tzinfo else float("nan")
    if isinstance(value, datetime):
        return value.timestamp() if value.tzinfo else float("nan")
    return to_float(value)


def effective_price(doc: Mapping[str, Any]) -> float:
    """The price a shopper pays: ``discounted_price`` when present and > 0, else ``price``."""
    disc = to_float(doc.get("discounted_price"))
    if disc == disc and disc > 0:
        return disc
    return to_float(doc.get("price"))


def discount_percent(doc: Mapping[str, Any]) -> float:
    """Percent off (0..100) from price and discounted_price, else the ``discount_pct`` field."""
    price = to_float(doc.get("price"))
    disc = to_float(doc.get("discounted_price"))
    if price == price and disc == disc and price > 0 and disc >= 0:
        return float(min(100.0, max(0.0, 100.0 * (price - disc) / price)))
    pct = to_float(doc.get("discount_pct"))
    return float(min(100.0, max(0.0, pct))) if pct == pct else float("nan")


def _in_stock(value: Any) -> float:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str):
        low = value.strip().lower()
        if low in ("true", "1", "yes"):
            return 1.0
        if low in ("false", "0", "no"):
            return 0.0
        return float("nan")
    v = to_float(value)
    return float("nan") if v != v else (1.0 if v > 0 else 0.0)


def doc_values(doc: Mapping[str, Any], reference_time: float) -> dict[str, float]:
    """The document features of one product (NaN where missing)."""
    added = epoch_seconds(doc.get("added_at"))
    ref = to_float(reference_time)
    recency = max(0.0, ref - added) / SECONDS_PER_DAY if added == added and ref == ref else math.nan
    price = effective_price(doc)
    return {
        "doc_category_conf": to_float(doc.get("predicted_category_confidence")),
        "log_price": math.log10(1.0 + price) if price == price and price >= 0 else math.nan,
        "discount_pct": discount_percent(doc),
        "rating": to_float(doc.get("rating")),
        "recency_days": recency,
        "log_popularity": _log10p(doc.get("popularity")),
        "log_sales": _log10p(doc.get("sales")),
        "log_clicks": _log10p(doc.get("clicks")),
        "in_stock": _in_stock(doc.get("in_stock")),
    }


# --------------------------------------------------------------------------- extraction


def relevance_norm(scores: Sequence[float]) -> np.ndarray:
    """score / max(score) over the list (NaN for a non-finite score or when max <= 0)."""
    arr = np.array([to_float(s) for s in scores], dtype=np.float64)
    finite = arr[np.isfinite(arr)]
    if finite.size == 0 or finite.max() <= 0:
        return np.full(arr.shape, np.nan)
    out = arr / finite.max()
    out[~np.isfinite(out)] = np.nan
    return out


def extract_features(candidates: Sequence[Candidate], reference_time: float) -> np.ndarray:
    """Feature matrix ``(len(candidates), len(FEATURES))``, float64, in :data:`FEATURES` order.

    Value columns hold NaN where missing; indicator columns are 0.0/1.0. Deterministic and pure:
    the same candidates and ``reference_time`` give the same matrix.
    """
    n = len(candidates)
    out = np.full((n, len(FEATURES)), np.nan, dtype=np.float64)
    if n == 0:
        return out
    rel = relevance_norm([c.score for c in candidates])
    col = {name: i for i, name in enumerate(VALUE_NAMES)}
    for i, cand in enumerate(candidates):
        row = out[i]
        row[col["relevance_norm"]] = rel[i]
        for name in SIGNAL_NAMES:
            row[col[name]] = to_float(cand.signals.get(name))
        for name, value in doc_values(cand.doc, reference_time).items():
            row[col[name]] = value
    refresh_derived(out)
    return out


def refresh_derived(out: np.ndarray) -> None:
    """In place: the columns comparing a candidate with its list, then the indicators (call
    after changing value columns of a list's matrix)."""
    price = out[:, VALUE_NAMES.index("log_price")]
    seen = price[np.isfinite(price)]
    rel = VALUE_NAMES.index("rel_log_price")
    out[:, rel] = price - float(np.median(seen)) if seen.size else np.nan
    out[:, N_VALUES:] = np.isnan(out[:, :N_VALUES]).astype(np.float64)


def fit_fill_values(x: np.ndarray) -> dict[str, float]:
    """Per value feature: the median of the observed values, or its default when never seen."""
    fill: dict[str, float] = {}
    for j, f in enumerate(VALUE_FEATURES):
        col = x[:, j] if x.size else np.empty(0)
        seen = col[np.isfinite(col)]
        fill[f.name] = float(np.median(seen)) if seen.size else f.default_fill
    return fill


def impute(x: np.ndarray, fill: Mapping[str, float] | None = None) -> np.ndarray:
    """A copy of ``x`` with every NaN of a value column replaced by its fill value."""
    values = {**DEFAULT_FILL, **(fill or {})}
    out = np.array(x, dtype=np.float64, copy=True)
    for j, name in enumerate(VALUE_NAMES):
        colv = out[:, j]
        colv[~np.isfinite(colv)] = values[name]
    return out


def doc_from_product(product: Product) -> dict[str, Any]:
    """The product-document fields the features read, from a catalog row."""
    pct = discount_percent({"price": product.price, "discounted_price": product.discounted_price})
    return {
        "id": product.id,
        "title": product.title,
        "article_type": product.article_type,
        "sub_category": product.sub_category,
        "base_colour": product.base_colour,
        "gender": product.gender,
        "price": product.price,
        "discounted_price": product.discounted_price,
        "discount_pct": None if pct != pct else pct,
        "rating": product.rating,
        "sales": product.sales,
        "clicks": product.clicks,
        "in_stock": product.in_stock,
        "added_at": product.added_at,
    }
