"""The local node provisioner: pure parts, error paths, and the running node (issue 2)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from engine.backend import Backend
from engine.cluster.artifacts import SHA256, bill_for, security_plugin
from engine.cluster.install import _download_pom
from engine.cluster.local import LocalNode
from engine.errors import ProvisionError
from engine.settings import LocalNodeSettings, Settings


def test_bill_pins_every_artifact() -> None:
    bill = bill_for("2.19.1", "2.19.1.0")
    files = {a.filename for a in bill.all_artifacts()}
    # the security plugin is pinned too; only the secured node (engine.cluster.secure) adds it
    assert files | {security_plugin("2.19.1.0").filename} == set(SHA256)
    assert {m.name for m in bill.modules} >= {"lang-painless", "analysis-common", "lang-mustache"}
    assert {p.artifact for p in bill.plugins} == {"opensearch-knn", "neural-search"}


def test_unpinned_version_is_rejected() -> None:
    with pytest.raises(ProvisionError, match="not a pinned version"):
        bill_for("9.9.9", "9.9.9.0")


def test_download_pom_is_non_transitive() -> None:
    pom = _download_pom(bill_for("2.19.1", "2.19.1.0").all_artifacts())
    n = len(bill_for("2.19.1", "2.19.1.0").all_artifacts())
    assert pom.count("<dependency>") == n
    assert pom.count("<exclusion><groupId>*</groupId>") == n
    assert "<type>zip</type>" in pom


def test_missing_mvn_is_a_clear_error(tmp_path: Path) -> None:
    node = LocalNode(LocalNodeSettings(home=tmp_path, mvn="no-such-mvn-binary"))
    with pytest.raises(ProvisionError, match="Apache Maven"):
        node.fetch_all(node.bill.all_artifacts())


def test_missing_java_is_a_clear_error(tmp_path: Path) -> None:
    node = LocalNode(LocalNodeSettings(home=tmp_path, java_home=tmp_path / "nojdk"))
    with pytest.raises(ProvisionError, match="bin/java does not exist"):
        node.java_home()


def test_port_taken_by_a_stranger(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        node = LocalNode(LocalNodeSettings(home=tmp_path, port=port))
        with pytest.raises(ProvisionError, match=f"port {port} is taken"):
            node.up()


@pytest.mark.opensearch
def test_up_reuses_running_node_and_status_reports(cluster: Backend, settings: Settings) -> None:
    if settings.cluster.url:
        pytest.skip("an external cluster is configured; the local node is not used")
    node = LocalNode(settings.local_node)
    pid = node.read_pid()
    assert pid is not None
    status = node.up()  # second up: a no-op
    assert status.pid == pid
    assert status.version == "2.19.1"
    assert {"opensearch-knn", "opensearch-neural-search"} <= set(status.plugins)
    assert {"lang-painless", "lang-mustache", "analysis-common", "mapper-extras"} <= set(
        status.modules
    )
    assert status.health in ("green", "yellow")
