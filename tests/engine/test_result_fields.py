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
    stores_probabilities,
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
    # a vector, or the attribute probabilities of an index that does not store them, are
    # only in _source
    slow = Source(extra=("attr_prob",), stored=True).fetch()
    assert slow == {"_source": {"includes": [*RESULT_FIELDS, "attr_prob"]}}
    vec = Source(extra=("image_embedding",), stored=True, stored_probabilities=True).fetch()
    assert vec == {"_source": {"includes": [*RESULT_FIELDS, "image_embedding"]}}
    probs = Source(extra=("attr_prob",), stored=True, stored_probabilities=True).fetch()
    assert probs["_source"] is False and probs["stored_fields"][-1] == "attr_prob.*"
    part = Source(extra=("attr_prob.base_colour",), stored=True, stored_probabilities=True)
    assert part.fetch()["stored_fields"][-1] == "attr_prob.base_colour.*"
    leaf = Source(extra=("attr_prob.base_colour.red",), stored=True, stored_probabilities=True)
    assert "_source" in leaf.fetch() and leaf.fetch()["_source"] is not False
    # stored probabilities without stored result fields: still _source
    assert "_source" in Source(extra=("attr_prob",), stored_probabilities=True).fetch()


def test_the_shipped_template_stores_the_attribute_probabilities() -> None:
    assert stores_probabilities(template_mappings())
    m = template_mappings()
    m["products-1"]["mappings"]["dynamic_templates"][2]["attribute_probabilities_int"][
        "mapping"
    ].pop("store")
    assert not stores_probabilities(m)  # one template that does not store them
    m = template_mappings()
    m["products-1"]["mappings"]["dynamic_templates"] = m["products-1"]["mappings"][
        "dynamic_templates"
    ][:1]
    assert not stores_probabilities(m)  # no template for attr_prob.*
    assert not stores_probabilities({}) and not stores_probabilities({"a": {}})


def test_an_index_with_an_unstored_probability_leaf_reads_them_from_source() -> None:
    m = template_mappings()
    props = m["products-1"]["mappings"]["properties"]
    stored = {"type": "float", "store": True}
    props["attr_prob"]["properties"] = {
        "base_colour": {"properties": {"red": stored, "blue": stored}},
        "article_type": {"properties": {"tshirts": stored}},
    }
    assert stores_probabilities(m)
    props["attr_prob"]["properties"]["base_colour"]["properties"]["blue"] = {"type": "float"}
    assert not stores_probabilities(m)  # mapped before the template stored them


def test_hit_source_nests_stored_probabilities() -> None:
    hit = {
        "fields": {
            "title": ["Tee"],
            "attr_prob.base_colour.navy_blue": [0.75],
            "attr_prob.base_colour.black": [4.0e-4],
            "attr_prob.article_type.tshirts": [1.0],
            "attr_prob.broken": [0.5],  # no value part: ignored
            "attr_prob.empty.x": [],
        }
    }
    assert hit_source(hit) == {
        "title": "Tee",
        "attr_prob": {
            "base_colour": {"navy_blue": 0.75, "black": 0.0004},
            "article_type": {"tshirts": 1.0},
        },
    }
    # _source wins
    both = {"_source": {"attr_prob": {"x": {"y": 1.0}}}, "fields": hit["fields"]}
    assert hit_source(both)["attr_prob"] == {"x": {"y": 1.0}}


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
    assert check() and check() and check.probabilities() and len(calls) == 1
    check.ttl_s = 0.0
    assert check() and len(calls) == 2  # the error keeps the last answer
    assert not StoredResultsCheck(lambda: {"x": {}})()
    assert not StoredResultsCheck(lambda: {"x": {}}).probabilities()
