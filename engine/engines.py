"""Which engine a cluster runs, and the backend for it (:func:`connect`).

``OUTFIT_CLUSTER__ENGINE=opensearch|elasticsearch``; unset with a URL: detected from the cluster
(``GET /`` names OpenSearch's distribution; Elasticsearch's integ-test distribution has no
rest-root module, ``GET /`` answers 405, so ``GET /_nodes/_local`` decides: its nodes carry a
``build_flavor``); unset without a URL: the local OpenSearch node.
"""

from __future__ import annotations

import logging
from typing import Any

from engine.backend import Backend
from engine.errors import ClusterUnavailable
from engine.es_backend import ElasticsearchBackend
from engine.settings import Engine, Settings

logger = logging.getLogger(__name__)


def engine_of(root: dict[str, Any] | None, nodes: dict[str, Any] | None) -> Engine:
    """Pure: the engine from a ``GET /`` body (None when refused) and a ``_nodes/_local`` one."""
    version = (root or {}).get("version") or {}
    if version.get("distribution") == "opensearch":
        return "opensearch"
    if version.get("build_flavor") is not None:
        return "elasticsearch"
    for node in ((nodes or {}).get("nodes") or {}).values():
        if "build_flavor" in node:
            return "elasticsearch"
    return "opensearch"


def detect_engine(settings: Settings) -> Engine:
    """Ask the configured cluster which engine it is (through the OpenSearch client, which
    checks nothing about the product; both answer these two requests)."""
    probe = Backend.from_settings(settings)
    transport = probe.client.transport
    root = None
    try:
        root = transport.perform_request("GET", "/")
    except Exception as exc:  # noqa: BLE001 - 405 on Elasticsearch's integ-test distribution
        logger.debug("GET / refused (%s); asking _nodes/_local", exc)
    try:
        nodes = transport.perform_request("GET", "/_nodes/_local")
    except Exception as exc:  # noqa: BLE001
        if root is None:
            raise ClusterUnavailable(f"cannot tell the cluster's engine ({exc})") from exc
        nodes = None
    return engine_of(root, nodes)


def resolve_engine(settings: Settings) -> Engine:
    if settings.cluster.engine is not None:
        return settings.cluster.engine
    if not settings.cluster.url:
        return "opensearch"
    return detect_engine(settings)


def with_engine(settings: Settings) -> Settings:
    """``settings`` with ``cluster.engine`` resolved (detected once when a URL is given)."""
    if settings.cluster.engine is not None:
        return settings
    cluster = settings.cluster.model_copy(update={"engine": resolve_engine(settings)})
    return settings.model_copy(update={"cluster": cluster})


def connect(settings: Settings) -> Backend:
    """The backend for the configured (or detected) engine."""
    if resolve_engine(settings) == "elasticsearch":
        return ElasticsearchBackend.from_settings(settings)
    return Backend.from_settings(settings)
