"""Shared fixtures. Tests marked ``opensearch`` talk to a real node: the configured cluster
(``OUTFIT_CLUSTER__URL``) or the local node, provisioned here when needed."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.backend import Backend
from engine.config.desired import desired_objects
from engine.config.installer import apply
from engine.settings import ClusterSettings, Settings, load_settings

TEST_PREFIX = "outfittest"
ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "sample"


@pytest.fixture(scope="session")
def settings() -> Settings:
    base = load_settings()
    cluster = base.cluster.model_copy(update={"index_prefix": TEST_PREFIX})
    return base.model_copy(update={"cluster": ClusterSettings.model_validate(cluster.model_dump())})


@pytest.fixture(scope="session")
def cluster(settings: Settings) -> Iterator[Backend]:
    """Wait for a healthy real node (provisioning the local one if no URL is configured)."""
    started_here = False
    node = None
    if not settings.cluster.url:
        from engine.cluster.local import LocalNode

        node = LocalNode(settings.local_node)
        if node.read_pid() is None:
            started_here = True
        node.up()
    logging.getLogger("opensearch").setLevel(logging.ERROR)
    backend = Backend.from_settings(settings)
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
