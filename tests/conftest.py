"""Shared fixtures. Tests marked ``opensearch`` talk to a real node: the configured cluster
(``OUTFIT_CLUSTER__URL``) or the local node, provisioned here when needed.

``cluster`` (and ``settings``) follow ``cluster_engine``: OpenSearch, unless a test module sets
``CLUSTER_ENGINES = BOTH_ENGINES``: its cluster tests then run once per engine (ids
``[opensearch]`` / ``[elasticsearch]``, marked ``opensearch`` / ``elasticsearch``; a module may
name one engine only, e.g. ``CLUSTER_ENGINES = ("elasticsearch",)``). The
Elasticsearch node is the local one (``python -m engine.cluster up --engine elasticsearch``,
provisioned here when needed) or ``OUTFIT_TEST_ELASTICSEARCH_URL``."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.engines import connect
from engine.settings import ClusterSettings, Settings, load_settings

TEST_PREFIX = "outfittest"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample"


BOTH_ENGINES = ("opensearch", "elasticsearch")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    engines = getattr(metafunc.module, "CLUSTER_ENGINES", ("opensearch",))
    if "cluster_engine" in metafunc.fixturenames and tuple(engines) != ("opensearch",):
        metafunc.parametrize(
            "cluster_engine",
            [pytest.param(e, id=e, marks=getattr(pytest.mark, e)) for e in engines],
            indirect=True,
            scope="session",
        )


@pytest.fixture(scope="session")
def cluster_engine(request: pytest.FixtureRequest) -> str:
    """The engine ``cluster`` runs (see the module docstring)."""
    return str(getattr(request, "param", "opensearch"))


@pytest.fixture(scope="session")
def settings(cluster_engine: str) -> Settings:
    base = load_settings()
    cluster = base.cluster.model_copy(update={"index_prefix": TEST_PREFIX})
    if cluster_engine == "elasticsearch":
        url = os.environ.get("OUTFIT_TEST_ELASTICSEARCH_URL") or None
        cluster = cluster.model_copy(update={"engine": "elasticsearch", "url": url})
    return base.model_copy(update={"cluster": ClusterSettings.model_validate(cluster.model_dump())})


@pytest.fixture(scope="session")
def cluster(settings: Settings, cluster_engine: str) -> Iterator[Backend]:
    """Wait for a healthy real node (provisioning the local one if no URL is configured)."""
    started_here = False
    node = None
    if not settings.cluster.url:
        from engine.cluster.local import LocalNode

        if cluster_engine == "elasticsearch":
            from engine.cluster.elasticsearch import ElasticsearchNode

            node = ElasticsearchNode(settings.elasticsearch_node)
        else:
            node = LocalNode(settings.local_node)
        if node.read_pid() is None:
            started_here = True
        node.up()
    logging.getLogger("opensearch").setLevel(logging.ERROR)
    logging.getLogger("elastic_transport").setLevel(logging.WARNING)
    backend = connect(settings)
    backend.wait_for_health(timeout_s=120)
    apply(backend, desired_objects(TEST_PREFIX, replicas=0))
    yield backend
    if started_here and node is not None:
        node.down()


@pytest.fixture
def products_index(cluster: Backend) -> Iterator[str]:
    """A fresh products index (gets our template) that is deleted after the test."""
    name = f"{TEST_PREFIX}-products-{uuid.uuid4().hex[:10]}"
    cluster.ensure_index(name)
    yield name
    cluster.delete_index(name)


@pytest.fixture
def looks_index(cluster: Backend) -> Iterator[str]:
    name = f"{TEST_PREFIX}-looks-{uuid.uuid4().hex[:10]}"
    cluster.ensure_index(name)
    yield name
    cluster.delete_index(name)


@pytest.fixture
def no_outfit_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The built-in defaults: every ``OUTFIT_*`` variable of the environment removed for the test
    (a run that moves the local nodes to other ports must not change what "default" means)."""
    for key in list(os.environ):
        if key.startswith("OUTFIT_"):
            monkeypatch.delenv(key)
