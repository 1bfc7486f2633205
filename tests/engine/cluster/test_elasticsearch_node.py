"""The local Elasticsearch provisioner (issue 16): pure parts, error paths, the running node."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.cluster.elasticsearch import ES_SHA256, ElasticsearchNode, es_config, es_distribution
from engine.cluster.install import _download_pom
from engine.errors import ProvisionError
from engine.settings import ElasticsearchNodeSettings, Settings


def test_distribution_is_pinned_integ_test_zip() -> None:
    a = es_distribution("8.19.0")
    assert a.coordinate == "org.elasticsearch.distribution.integ-test-zip:elasticsearch:8.19.0:zip"
    assert a.filename in ES_SHA256
    assert "<type>zip</type>" in _download_pom([a])


def test_unpinned_version_is_rejected() -> None:
    with pytest.raises(ProvisionError, match="not a pinned version"):
        es_distribution("9.2.0")


def test_config_is_loopback_single_node_without_security(tmp_path: Path) -> None:
    s = ElasticsearchNodeSettings(home=tmp_path)
    conf = es_config(s, tmp_path / "data", tmp_path / "logs")
    assert conf["network.host"] == "127.0.0.1"
    assert conf["discovery.type"] == "single-node"
    assert conf["xpack.security.enabled"] == "false"
    assert (conf["http.port"], conf["transport.port"]) == ("9250", "9350")


def test_own_ports_and_home_by_default(no_outfit_env: None) -> None:
    s = Settings()
    es, os_ = s.elasticsearch_node, s.local_node
    assert {es.port, es.transport_port}.isdisjoint({os_.port, os_.transport_port})
    assert es.home != os_.home and es.url == "http://127.0.0.1:9250"


def test_port_taken_by_a_stranger(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        node = ElasticsearchNode(ElasticsearchNodeSettings(home=tmp_path, port=port))
        with pytest.raises(ProvisionError, match=f"port {port} is taken"):
            node.up()


def test_missing_mvn_is_a_clear_error(tmp_path: Path) -> None:
    node = ElasticsearchNode(ElasticsearchNodeSettings(home=tmp_path, mvn="no-such-mvn-binary"))
    with pytest.raises(ProvisionError, match="Apache Maven"):
        node.install()


@pytest.mark.elasticsearch
def test_up_reuses_running_node_and_status_reports(settings: Settings) -> None:
    if settings.cluster.url:
        pytest.skip("an external cluster is configured; the local node is not used")
    node = ElasticsearchNode(settings.elasticsearch_node)
    started_here = node.read_pid() is None
    try:
        first = node.up()  # starts it (or reuses the one the session started)
        again = node.up()  # a no-op
        assert again.pid == first.pid is not None
        assert again.version == "8.19.0"
        assert set(again.modules) == {"apm", "transport-netty4", "x-pack-core", "x-pack-security"}
        assert again.health in ("green", "yellow")
    finally:
        if started_here:  # leave no process behind
            node.down()
