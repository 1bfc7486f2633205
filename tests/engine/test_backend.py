"""Backend behaviour on the real node (both engines): errors translated the same way by every call, and the
bulk refresh interval put back whatever happens inside the block."""

from __future__ import annotations

import pytest

from engine.backend import Backend
from engine.errors import NotFound
from tests.conftest import BOTH_ENGINES

pytestmark = pytest.mark.opensearch
CLUSTER_ENGINES = BOTH_ENGINES


def _interval(backend: Backend, index: str) -> str | None:
    got = backend.get_settings(index)[index]["settings"]["index"]
    return got.get("refresh_interval")


def test_msearch_on_a_missing_index_is_not_found(cluster: Backend) -> None:
    with pytest.raises(NotFound):
        cluster.msearch("outfittest-no-such-index", [{"query": {"match_all": {}}}])


def test_refresh_interval_is_restored_after_the_block(
    cluster: Backend, products_index: str
) -> None:
    cluster.put_settings(products_index, {"index": {"refresh_interval": "7s"}})
    with cluster.refresh_interval(products_index, "30s"):
        assert _interval(cluster, products_index) == "30s"
    assert _interval(cluster, products_index) == "7s"


def test_refresh_interval_is_restored_after_an_error(cluster: Backend, products_index: str) -> None:
    before = _interval(cluster, products_index)  # what our index template gives
    assert before != "30s"
    with pytest.raises(RuntimeError), cluster.refresh_interval(products_index, "30s"):
        assert _interval(cluster, products_index) == "30s"
        raise RuntimeError("boom")
    assert _interval(cluster, products_index) == before


def test_refresh_interval_leaves_refreshes_switched_off(
    cluster: Backend, products_index: str
) -> None:
    cluster.put_settings(products_index, {"index": {"refresh_interval": "-1"}})
    with cluster.refresh_interval(products_index, "30s"):
        assert _interval(cluster, products_index) == "-1"
    assert _interval(cluster, products_index) == "-1"
