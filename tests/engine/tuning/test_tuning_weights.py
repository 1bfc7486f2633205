"""Tuning values and pipeline bodies (pure), and the blend cache (issue 8)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from engine.config.desired import desired_objects
from engine.config.installer import _stamped
from engine.errors import ClusterUnavailable, ConfigError, InvalidInput
from engine.ltr.rerank import RerankBlend
from engine.settings import ClusterSettings
from engine.tuning.weights import (
    BlendPatch,
    BlendSettings,
    HybridWeights,
    TuningStore,
    is_tuned,
    parse_blend_patch,
    parse_weights,
    pipeline_weights,
    preserve_tuned_weights,
    tuned_version,
    with_weights,
)


def pipeline_body() -> dict[str, Any]:
    obj = next(o for o in desired_objects("unit") if o.kind == "search_pipeline")
    return _stamped(obj)


@pytest.mark.parametrize(
    "values",
    [
        {"bm25": 0.5, "vector": 0.6},  # sum != 1
        {"bm25": -0.2, "vector": 1.2},  # out of range
        {"bm25": float("nan"), "vector": 0.5},
        {"bm25": float("inf"), "vector": 0.0},
        {"bm25": "0.3", "vector": 0.7},  # strings are not numbers here
        {"bm25": True, "vector": 0.0},
        {"bm25": 0.3},  # missing
        {"bm25": 0.3, "vector": 0.7, "image": 0.0},  # unknown weight
    ],
)
def test_invalid_weights(values: dict) -> None:
    with pytest.raises(InvalidInput) as info:
        parse_weights(values)
    assert info.value.details["errors"]


def test_valid_weights_and_blend_patch() -> None:
    w = parse_weights({"bm25": 0.3, "vector": 0.7})
    assert w.as_list() == [0.3, 0.7]
    assert parse_weights({"bm25": 1, "vector": 0}).as_list() == [1.0, 0.0]
    blend = parse_blend_patch({"ltr_weight": 0.2}).apply_to(BlendSettings(top_n=40))
    assert blend == BlendSettings(ltr_weight=0.2, top_n=40, enabled=True)
    assert blend.to_blend() == RerankBlend(0.2, 40, True)
    for bad in ({"ltr_weight": 2.0}, {"top_n": 0}, {"enabled": "yes"}, {"speed": 1}):
        with pytest.raises(InvalidInput):
            parse_blend_patch(bad)


def test_pipeline_weights_roundtrip_keeps_the_config_digest() -> None:
    body = pipeline_body()
    assert pipeline_weights(body).as_list() == [0.4, 0.6]  # plugin_config/pipelines/hybrid.json
    assert not is_tuned(body)
    tuned = with_weights(body, HybridWeights(bm25=0.2, vector=0.8), 7)
    assert pipeline_weights(tuned).as_list() == [0.2, 0.8]
    assert tuned_version(tuned) == "v7"
    assert "[outfit_config_digest=" in tuned["description"]
    again = with_weights(tuned, HybridWeights(bm25=0.5, vector=0.5), 8)
    assert again["description"].count("outfit_tuned_weights") == 1
    assert tuned_version(again) == "v8"
    assert pipeline_weights(body).as_list() == [0.4, 0.6]  # the input was not modified


def test_pipeline_without_weights_is_a_config_error() -> None:
    with pytest.raises(ConfigError):
        pipeline_weights({"phase_results_processors": []})
    body = pipeline_body()
    body["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"][
        "weights"
    ] = [0.2, 0.3, 0.5]
    with pytest.raises(ConfigError):
        pipeline_weights(body)


def test_preserve_tuned_weights_for_the_installer() -> None:
    current = with_weights(pipeline_body(), HybridWeights(bm25=0.1, vector=0.9), 3)
    new = pipeline_body()
    new["description"] = new["description"].replace("outfit-search", "outfit-search v2")
    kept = preserve_tuned_weights(current, new)
    assert pipeline_weights(kept).as_list() == [0.1, 0.9]
    assert tuned_version(kept) == "v3"
    assert "v2" in kept["description"]
    # untuned: nothing carried over
    assert preserve_tuned_weights(pipeline_body(), new) == new
    # a pipeline with another number of sub-queries cannot take the old weights
    three = json.loads(json.dumps(new))
    three["phase_results_processors"][0]["normalization-processor"]["combination"]["parameters"][
        "weights"
    ] = [0.2, 0.3, 0.5]
    assert preserve_tuned_weights(current, three) == three


class FakeBackend:
    """Only what TuningStore.blend() reads: a search over the settings index."""

    def __init__(self) -> None:
        self.calls = 0
        self.blend = {"ltr_weight": 0.25, "top_n": 30, "enabled": True}
        self.fail = False

    def search(self, index: str, body: dict) -> dict:
        self.calls += 1
        if self.fail:
            raise ClusterUnavailable("down")
        src = {
            "version": 2,
            "weights": {"bm25": 0.4, "vector": 0.6},
            "blend": dict(self.blend),
            "action": "set",
            "updated_at": 0.0,
        }
        return {"hits": {"hits": [{"_source": src}]}}


def test_blend_is_cached_for_the_ttl() -> None:
    now = [0.0]
    fake = FakeBackend()
    store = TuningStore(
        fake,  # type: ignore[arg-type]
        ClusterSettings(index_prefix="unit"),
        blend_ttl_s=10.0,
        clock=lambda: now[0],
    )
    assert store.index == "unit-settings" and store.pipeline == "unit-hybrid"
    assert store.blend() == RerankBlend(0.25, 30, True)
    fake.blend["ltr_weight"] = 0.75
    now[0] = 9.0
    assert store.blend().ltr_weight == 0.25 and fake.calls == 1  # cached
    now[0] = 10.5
    assert store.blend().ltr_weight == 0.75 and fake.calls == 2  # re-read after the TTL
    fake.fail = True
    now[0] = 30.0
    assert store.blend().ltr_weight == 0.75  # cluster down: last known blend
    store.invalidate()
    assert store.blend() == RerankBlend()  # nothing known: the default


def test_empty_blend_patch_changes_nothing() -> None:
    assert BlendPatch().apply_to(BlendSettings()) == BlendSettings()
