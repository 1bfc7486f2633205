"""Result fields as stored fields (engine.result_fields): reading hits back, telling from a
mapping whether an index stores them, and the bodies that ask for them."""

from __future__ import annotations

import copy
import json
from typing import Any

from engine.config.desired import CONFIG_DIR
from engine.queries import RESULT_FIELDS, Source, hybrid_search_body
from engine.result_fields import (
    STORED,
    StoredResultsCheck,
    hit_source,
    storable,
    stores_results,
)
from engine.search.quality import LTR_DOC_FIELDS


def template_mappings() -> dict[str, Any]:
    body = json.loads((CONFIG_DIR / "index_templates" / "products.json").read_text())
    return {"products-1": {"mappings": body["template"]["mappings"]}}


def test_the_shipped_template_stores_every_result_and_ltr_field() -> None:
    assert storable(RESULT_FIELDS) and storable(LTR_DOC_FIELDS)
    assert stores_results(template_mappings())


def test_an_index_without_one_stored_field_is_read_from_source() -> None:
    for doc_field, stored in STORED.items():
        m = template_mappings()
        props = m["products-1"]["mappings"]["properties"]
        name, _, sub = stored.partition(".")
        node = props[name]["fields"][sub] if sub else props[name]
        node.pop("store")
        assert not stores_results(m), doc_field


def test_an_alias_over_an_old_and_a_new_index_is_read_from_source() -> None:
    new = template_mappings()["products-1"]
    old = copy.deepcopy(new)
    for node in old["mappings"]["properties"].values():
        node.pop("store", None)
        (node.get("fields") or {}).pop("shown", None)
    assert stores_results({"a": new, "b": new})
    assert not stores_results({"a": new, "b": old})
    assert not stores_results({})
    assert not stores_results({"a": {}})


def test_hit_source_unwraps_stored_fields_under_their_document_names() -> None:
    hit = {
        "_id": "1",
        "fields": {
            "title": ["Blue Tee"],
            "article_type.shown": ["Tshirts"],
            "colours.shown": ["Navy Blue"],
            "price": [19.99],
            "in_stock": [False],
            "source_image_urls": ["https://x/a.jpg", "https://x/b.jpg"],
            "somebody.else": ["ignored"],
            "brand.shown": [],
        },
    }
    assert hit_source(hit) == {
        "title": "Blue Tee",
        "article_type": "Tshirts",
        "colours": ["Navy Blue"],
        "price": 19.99,
        "in_stock": False,
        "source_image_urls": ["https://x/a.jpg", "https://x/b.jpg"],
    }


def test_hit_source_prefers_source_and_tolerates_odd_hits() -> None:
    hit = {"_source": {"title": "From source"}, "fields": {"title": ["stored"], "slot": ["top"]}}
    assert hit_source(hit) == {"title": "From source", "slot": "top"}
    assert hit_source({"_id": "1"}) == {}
    assert hit_source({"_source": None, "fields": {"title": "not a list"}}) == {}


def test_source_asks_for_stored_fields_only_when_all_are_stored() -> None:
    assert Source().fetch() == {"_source": {"includes": list(RESULT_FIELDS)}}
    fast = Source(extra=LTR_DOC_FIELDS, stored=True).fetch()
    assert fast["_source"] is False
    assert "article_type.shown" in fast["stored_fields"] and "rating" in fast["stored_fields"]
    assert len(fast["stored_fields"]) == len(set(RESULT_FIELDS) | set(LTR_DOC_FIELDS))
    # a vector or the attribute probabilities are only in _source
    slow = Source(extra=("attr_prob",), stored=True).fetch()
    assert slow == {"_source": {"includes": [*RESULT_FIELDS, "attr_prob"]}}


def test_hybrid_body_with_stored_fields() -> None:
    body = hybrid_search_body("red dress", [0.0] * 4, size=10, source=Source(stored=True))
    assert body["_source"] is False
    assert body["stored_fields"][:2] == ["id", "title"]
    assert body["size"] == 10 and "hybrid" in body["query"]


def test_the_check_caches_and_survives_cluster_errors() -> None:
    calls: list[int] = []
    answers: list[Any] = [template_mappings(), RuntimeError("node gone")]

    def mapping() -> dict[str, Any]:
        calls.append(1)
        a = answers.pop(0)
        if isinstance(a, Exception):
            raise a
        return a  # type: ignore[no-any-return]

    check = StoredResultsCheck(mapping, ttl_s=3600.0)
    assert check() and check() and len(calls) == 1
    check.ttl_s = 0.0
    assert check() and len(calls) == 2  # the error keeps the last answer
    assert not StoredResultsCheck(lambda: {"x": {}})()
