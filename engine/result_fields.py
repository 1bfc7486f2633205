"""Result fields read as Lucene stored fields instead of out of ``_source``.

A products document carries three 256-float vectors and ~250 attribute probabilities (~9 kB
of JSON), and the node parses all of it for every hit that returns any part of ``_source``
(measured on the 44k index: ~1 ms per hit, whatever the ``includes``). The products mapping
therefore stores the fields a hit shows and the LTR stage reads (:data:`STORED`): the node
then answers ``stored_fields`` without touching ``_source``.

Keyword fields with the ``lower`` normalizer would store their *normalised* value
(``"sweaters"`` for ``Sweaters``), so those are stored through an unindexed sub-field,
``<field>.shown``, which keeps the value as written. Sub-fields and stored fields are derived
from ``_source`` whenever a document is (re)indexed, so partial updates of price and stock
keep them current.

An index created before this mapping (or one the retailer mapped itself) has no stored result
fields: :func:`stores_results` tells from its mapping, and the search paths then ask for
``_source`` as before (:class:`StoredResultsCheck`).

The attribute probabilities (``attr_prob.<attr>.<value>``, ~30 floats a document) that the
photo and more-like-this re-rank reads for its 60 candidates are stored too (the mapping's
dynamic templates for ``attr_prob.*``): they are fetched by pattern (``attr_prob.*``, or
``attr_prob.base_colour.*`` for the attributes a caller reads) and nested back into
``attr_prob`` by :func:`hit_source`. An index built before they were stored
(:func:`stores_probabilities` false) reads them out of ``_source``, as before.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

logger = logging.getLogger(__name__)

JSON = dict[str, Any]

SHOWN = "shown"  # the stored, unindexed keyword sub-field of a normalised keyword field

_SHOWN_FIELDS = (
    "brand",
    "gender",
    "master_category",
    "sub_category",
    "article_type",
    "base_colour",
    "colours",
    "season",
    "usage",
)
_PLAIN_STORED = (
    "id",
    "title",
    "slot",
    "price",
    "discounted_price",
    "in_stock",
    "source_image_urls",
    "image_urls",
    "predicted_category_confidence",
    "rating",
    "added_at",
    "sales",
    "clicks",
)

# document field -> the stored field holding its value as written
STORED: dict[str, str] = {
    **{f: f for f in _PLAIN_STORED},
    **{f: f"{f}.{SHOWN}" for f in _SHOWN_FIELDS},
}
_DOC_FIELD = {stored: doc for doc, stored in STORED.items()}

# fields whose value is a list in the document (stored fields always come back as lists)
MULTI_VALUED = frozenset({"colours", "source_image_urls", "image_urls"})


PROBS = "attr_prob"  # the document object of attribute probabilities


def is_probabilities(field: str) -> bool:
    """``attr_prob`` or one attribute's part of it (``attr_prob.base_colour``)."""
    return field == PROBS or (field.startswith(PROBS + ".") and field.count(".") == 1)


def storable(fields: tuple[str, ...] | list[str], probabilities: bool = False) -> bool:
    """True when every one of ``fields`` can be read as a stored field (``attr_prob`` and its
    per-attribute parts too when the index stores the ``probabilities``)."""
    return all(f in STORED or (probabilities and is_probabilities(f)) for f in fields)


def stored_names(fields: tuple[str, ...] | list[str]) -> list[str]:
    """The stored field names to request for ``fields`` (each must be :func:`storable`):
    probabilities by pattern (``attr_prob.*``, ``attr_prob.base_colour.*``)."""
    return [f"{f}.*" if is_probabilities(f) else STORED[f] for f in fields]


def hit_source(hit: Mapping[str, Any]) -> JSON:
    """A hit's document fields: its ``_source`` plus its stored ``fields`` under their document
    names (single values unwrapped, list fields kept as lists); ``_source`` wins on a clash."""
    src = hit.get("_source")
    out: JSON = dict(src) if isinstance(src, Mapping) else {}
    fields = hit.get("fields")
    if isinstance(fields, Mapping):
        probs: dict[str, dict[str, float]] = {}
        for name, values in fields.items():
            if name.startswith(PROBS + ".") and PROBS not in out:
                attr, _, value = name[len(PROBS) + 1 :].partition(".")
                if attr and value and isinstance(values, list) and values:
                    probs.setdefault(attr, {})[value] = float(values[0])
                continue
            doc = _DOC_FIELD.get(name)
            if doc is None or doc in out or not isinstance(values, list) or not values:
                continue
            out[doc] = list(values) if doc in MULTI_VALUED else values[0]
        if probs:
            out[PROBS] = probs
    return out


def _field(props: Mapping[str, Any], stored: str) -> Mapping[str, Any] | None:
    name, _, sub = stored.partition(".")
    node = props.get(name)
    if not isinstance(node, Mapping):
        return None
    if sub:
        node = (node.get("fields") or {}).get(sub)
    return node if isinstance(node, Mapping) else None


def _is_stored(node: Mapping[str, Any]) -> bool:
    """Does a field mapping say ``store: true`` (the node may answer the string)?"""
    return node.get("store") in (True, "true")


def stores_results(mappings: Mapping[str, Any]) -> bool:
    """True when every index of a get-mapping response (``{index: {"mappings": ...}}``, an
    alias may name several) stores every field of :data:`STORED`."""
    if not mappings:
        return False
    for entry in mappings.values():
        props = ((entry or {}).get("mappings") or {}).get("properties") or {}
        for stored in STORED.values():
            node = _field(props, stored)
            if node is None or not _is_stored(node):
                return False
    return True


def _leaves(node: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    """The leaf field mappings under an object mapping."""
    out: list[Mapping[str, Any]] = []
    for child in (node.get("properties") or {}).values():
        if isinstance(child, Mapping):
            out.extend(_leaves(child) if "properties" in child else [child])
    return out


def stores_probabilities(mappings: Mapping[str, Any]) -> bool:
    """True when every index of a get-mapping response stores its attribute probabilities:
    every dynamic template for ``attr_prob.*`` maps to a stored field (there is at least one)
    and every ``attr_prob`` leaf already mapped is stored (a template changed after fields
    were created would leave those unstored, and their values would be missed)."""
    if not mappings:
        return False
    for entry in mappings.values():
        m = (entry or {}).get("mappings") or {}
        templates = [
            t
            for item in m.get("dynamic_templates") or []
            if isinstance(item, Mapping)
            for t in item.values()
            if isinstance(t, Mapping) and str(t.get("path_match", "")).startswith(PROBS + ".")
        ]
        if not templates or any(not _is_stored(t.get("mapping") or {}) for t in templates):
            return False
        node = (m.get("properties") or {}).get(PROBS)
        if isinstance(node, Mapping) and any(not _is_stored(leaf) for leaf in _leaves(node)):
            return False
    return True


class StoredResultsCheck:
    """Does the products index store the result fields? (cached; re-read every ``ttl_s``)

    ``mapping`` returns the index's get-mapping response (the backend's ``get_mapping``). A
    cluster error keeps the last answer (``False`` before any): reading ``_source`` is always
    correct, only slower.
    """

    def __init__(self, mapping: Callable[[], Mapping[str, Any]], ttl_s: float = 60.0) -> None:
        self._mapping = mapping
        self.ttl_s = ttl_s
        self._at = -1e18
        self._result = False
        self._probs = False

    def _refresh(self) -> None:
        now = time.monotonic()
        if now - self._at >= self.ttl_s:
            self._at = now
            try:
                m = self._mapping()
                self._result, self._probs = stores_results(m), stores_probabilities(m)
            except Exception as exc:  # noqa: BLE001 - a check, never a failure of search
                logger.debug("stored result fields check skipped: %s", exc)

    def __call__(self) -> bool:
        """Are the result fields stored?"""
        self._refresh()
        return self._result

    def probabilities(self) -> bool:
        """Are the attribute probabilities stored (and the result fields)?"""
        self._refresh()
        return self._result and self._probs


__all__ = [
    "MULTI_VALUED",
    "PROBS",
    "is_probabilities",
    "STORED",
    "StoredResultsCheck",
    "hit_source",
    "storable",
    "stored_names",
    "stores_probabilities",
    "stores_results",
]
