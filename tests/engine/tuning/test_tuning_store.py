"""Versioned tuning against a real node: pipeline weights, history, rollback, the installer
hook that keeps tuned weights (issue 8)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import pytest

from engine.backend import Backend
from engine.config.desired import ConfigObject, desired_objects
from engine.config.installer import apply
from engine.errors import Conflict, NotFound
from engine.settings import ClusterSettings, Settings
from engine.tuning.weights import (
    BlendPatch,
    HybridWeights,
    TuningStore,
    pipeline_weights,
    tuned_version,
)
from tests.conftest import BOTH_ENGINES, TEST_PREFIX

pytestmark = pytest.mark.opensearch
CLUSTER_ENGINES = BOTH_ENGINES


def pipeline_objects(prefix: str) -> list[ConfigObject]:
    return [o for o in desired_objects(prefix) if o.kind == "search_pipeline"]


@pytest.fixture
def tuning_cluster(settings: Settings, cluster: Backend) -> Iterator[ClusterSettings]:
    """Our own prefix (own pipeline and settings index), so other tests' pipeline is untouched."""
    prefix = f"{TEST_PREFIX}-tune{uuid.uuid4().hex[:8]}"
    cs = settings.cluster.model_copy(update={"index_prefix": prefix})
    apply(cluster, pipeline_objects(prefix))
    yield cs
    cluster.delete_index(f"{prefix}-settings")
    cluster.delete_search_pipeline(cs.hybrid_pipeline)


def live_weights(cluster: Backend, cs: ClusterSettings) -> list[float]:
    body = cluster.get_search_pipeline(cs.hybrid_pipeline)
    assert body is not None
    return pipeline_weights(body).as_list()


def test_set_history_rollback(cluster: Backend, tuning_cluster: ClusterSettings) -> None:
    store = TuningStore(cluster, tuning_cluster)
    view = store.current()
    assert (view.version, view.tuned, view.weights.as_list()) == (0, False, [0.4, 0.6])
    assert store.history() == []

    v = store.update(HybridWeights(bm25=0.3, vector=0.7), actor="t", comment="more visual")
    assert v.version == 2 and v.action == "set"
    assert live_weights(cluster, tuning_cluster) == [0.3, 0.7]  # in the stored pipeline
    body = cluster.get_search_pipeline(tuning_cluster.hybrid_pipeline)
    assert body is not None and tuned_version(body) == "v2"

    v3 = store.update(None, BlendPatch(ltr_weight=0.2))
    assert v3.blend.ltr_weight == 0.2 and v3.weights.as_list() == [0.3, 0.7]
    assert store.blend().ltr_weight == 0.2  # this process sees it at once
    assert [h.version for h in store.history()] == [3, 2, 1]
    assert store.history()[-1].action == "baseline"
    assert store.history()[-1].weights.as_list() == [0.4, 0.6]

    back = store.rollback(to_version=1)
    assert back.version == 4 and back.rolled_back_to == 1 and back.action == "rollback"
    assert live_weights(cluster, tuning_cluster) == [0.4, 0.6]
    assert store.blend().ltr_weight == 0.5
    undo = store.rollback()  # default: the version before the newest (v3)
    assert undo.rolled_back_to == 3
    assert live_weights(cluster, tuning_cluster) == [0.3, 0.7]
    view = store.current()
    assert (view.version, view.tuned, view.in_sync) == (5, True, True)

    with pytest.raises(NotFound):
        store.rollback(to_version=99)
    with pytest.raises(Conflict):  # already the newest: 409
        store.rollback(to_version=5)


def test_concurrent_version_is_a_conflict(
    cluster: Backend, tuning_cluster: ClusterSettings
) -> None:
    store = TuningStore(cluster, tuning_cluster)
    store.update(HybridWeights(bm25=0.5, vector=0.5))  # v1 baseline, v2
    # another writer takes v3 first
    cluster.create_doc(f"{tuning_cluster.index_prefix}-settings", "tuning-0000000003", {"x": 1})
    with pytest.raises(Conflict):
        store.update(HybridWeights(bm25=0.1, vector=0.9))
    assert live_weights(cluster, tuning_cluster) == [0.5, 0.5]  # nothing half-applied


def test_missing_pipeline_is_reported(cluster: Backend, settings: Settings) -> None:
    cs = settings.cluster.model_copy(
        update={"index_prefix": f"{TEST_PREFIX}-none{uuid.uuid4().hex[:6]}"}
    )
    with pytest.raises(NotFound, match="engine.config apply"):
        TuningStore(cluster, cs).current()


def test_config_apply_keeps_tuned_weights(
    cluster: Backend, tuning_cluster: ClusterSettings
) -> None:
    prefix = tuning_cluster.index_prefix
    TuningStore(cluster, tuning_cluster).update(HybridWeights(bm25=0.2, vector=0.8))
    objs = pipeline_objects(prefix)
    # same configuration: unchanged, weights kept
    assert [c.action for c in apply(cluster, objs)] == ["unchanged"]
    assert live_weights(cluster, tuning_cluster) == [0.2, 0.8]
    # a new version of the pipeline configuration: updated, tuned weights still kept
    changed = [
        ConfigObject(o.kind, o.name, {**o.body, "description": o.body["description"] + " (v2)"})
        for o in objs
    ]
    assert [c.action for c in apply(cluster, changed)] == ["updated"]
    assert live_weights(cluster, tuning_cluster) == [0.2, 0.8]
    body = cluster.get_search_pipeline(tuning_cluster.hybrid_pipeline)
    assert body is not None and "(v2)" in body["description"] and tuned_version(body) == "v2"
    assert [c.action for c in apply(cluster, changed)] == ["unchanged"]
    # --reset-weights: back to the configured weights, even with an unchanged digest
    assert [c.action for c in apply(cluster, changed, reset_weights=True)] == ["updated"]
    assert live_weights(cluster, tuning_cluster) == [0.4, 0.6]
    body = cluster.get_search_pipeline(tuning_cluster.hybrid_pipeline)
    assert body is not None and tuned_version(body) is None
    view = TuningStore(cluster, tuning_cluster).current()
    assert not view.in_sync  # history says 0.2/0.8: show reports the drift
