"""The multi-node cluster's pure parts (config, ports, settings) and the multi-host client.

The cluster itself (election, a killed node rejoining, no process left) runs in
``test_chaos.py`` (marker ``chaos``)."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.backend import RETRY_ON_STATUS, Backend
from engine.cluster.multi import LocalCluster
from engine.config.desired import replicas_for
from engine.settings import ClusterSettings, LocalClusterSettings, LocalNodeSettings, Settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_members_get_distinct_ports_folders_and_names(tmp_path: Path) -> None:
    cluster = LocalCluster(LocalNodeSettings(home=tmp_path), LocalClusterSettings(), nodes=3)
    assert cluster.urls == [f"http://127.0.0.1:{p}" for p in (9211, 9212, 9213)]
    assert [m.s.transport_port for m in cluster.members] == [9311, 9312, 9313]
    assert len({m.root for m in cluster.members}) == 3
    assert [m.name for m in cluster.members] == [f"outfit-cluster-{i}" for i in (1, 2, 3)]
    assert all(m.s.heap == "512m" for m in cluster.members)
    # the single node keeps its own port and folders
    assert LocalNodeSettings().port == 9200
    assert all(m.data_dir != tmp_path / "data" for m in cluster.members)
    assert cluster.url == ",".join(cluster.urls)


def test_member_config_lists_every_node_for_discovery_and_election(tmp_path: Path) -> None:
    cluster = LocalCluster(LocalNodeSettings(home=tmp_path), LocalClusterSettings(), nodes=3)
    m = cluster.members[1]
    (m.install_dir / "config").mkdir(parents=True)
    (m.install_dir / "config" / "jvm.options").write_text("-Xss1m\n")
    m._write_config()
    conf = {
        k: json.loads(v)
        for k, v in (
            line.split(": ", 1)
            for line in (m.config_dir / "opensearch.yml").read_text().splitlines()
        )
    }
    assert conf["node.name"] == "outfit-cluster-2"
    assert conf["http.port"] == 9212 and conf["transport.port"] == 9312
    assert conf["discovery.seed_hosts"] == ["127.0.0.1:9311", "127.0.0.1:9312", "127.0.0.1:9313"]
    assert conf["cluster.initial_cluster_manager_nodes"] == [
        "outfit-cluster-1",
        "outfit-cluster-2",
        "outfit-cluster-3",
    ]
    assert conf["network.host"] == "127.0.0.1"
    assert "discovery.type" not in conf
    assert m._env()["OPENSEARCH_PATH_CONF"] == str(m.config_dir)
    assert (m.config_dir / "jvm.options").read_text() == "-Xss1m\n"


def test_replicas_follow_the_data_nodes() -> None:
    assert replicas_for(1) == 0
    assert replicas_for(2) == 1 and replicas_for(3) == 1


def test_cluster_url_may_list_several_nodes() -> None:
    c = ClusterSettings(url=" http://127.0.0.1:9211, http://127.0.0.1:9212 ,")
    assert c.hosts == ["http://127.0.0.1:9211", "http://127.0.0.1:9212"]
    assert ClusterSettings().hosts == []
    with pytest.raises(ValidationError, match="must start with http"):
        ClusterSettings(url="http://127.0.0.1:9211,127.0.0.1:9212")
    with pytest.raises(ValidationError, match="must all be http or all https"):
        ClusterSettings(url="http://127.0.0.1:9211,https://127.0.0.1:9212")


def test_client_knows_every_node_and_retries_without_sniffing(no_outfit_env: None) -> None:
    urls = "http://127.0.0.1:9211,http://127.0.0.1:9212,http://127.0.0.1:9213"
    backend = Backend.from_settings(Settings(cluster=ClusterSettings(url=urls, max_retries=3)))
    t = backend.client.transport
    assert sorted(c.host for c in t.connection_pool.connections) == urls.split(",")
    assert tuple(t.retry_on_status) == RETRY_ON_STATUS == (502, 503, 504)
    assert t.retry_on_timeout and t.max_retries == 3
    assert not t.sniff_on_connection_fail and t.sniffer_timeout is None
    # no URL: the local single node alone
    local = Backend.from_settings(Settings())
    assert [c.host for c in local.client.transport.connection_pool.connections] == [
        "http://127.0.0.1:9200"
    ]


class _Answer(BaseHTTPRequestHandler):
    """A loopback stand-in for a node: 503 on the first request, then a cluster health."""

    calls = 0

    def do_GET(self) -> None:  # noqa: N802 - http.server's naming
        type(self).calls += 1
        if type(self).calls == 1:
            self.send_response(503)
            body = b'{"error": "cluster_manager_not_discovered_exception", "status": 503}'
        else:
            self.send_response(200)
            body = b'{"status": "green", "number_of_data_nodes": 3}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def answering_port() -> Iterator[int]:
    _Answer.calls = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


def test_a_dead_node_and_a_503_are_retried_on_another_node(answering_port: int) -> None:
    dead = _free_port()  # nothing listens there: connection refused
    urls = f"http://127.0.0.1:{dead},http://127.0.0.1:{answering_port}"
    backend = Backend.from_settings(Settings(cluster=ClusterSettings(url=urls, max_retries=3)))
    for _ in range(3):  # whichever node the pool picks first, the request goes through
        assert backend.data_nodes() == 3
    assert _Answer.calls == 4  # the 503 was sent again
