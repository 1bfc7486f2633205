"""A multi-node OpenSearch cluster on loopback (``python -m engine.cluster up --nodes 3``).

Every member is a :class:`~engine.cluster.local.LocalNode` of its own: the same installation
(``<local_node.home>/opensearch-<v>``, installed once), but its own config folder
(``OPENSEARCH_PATH_CONF``), data, logs and pid file under ``<local_node.home>/<name>/node-<i>``,
its own ports (``LocalClusterSettings.http_base_port + i`` ...) and heap. All members are
cluster-manager eligible data nodes: they find each other through ``discovery.seed_hosts`` and
the first start elects a cluster manager among ``cluster.initial_cluster_manager_nodes``. A
member that is killed and started again (same node name, same data folder) rejoins.

The cluster name and node names are fixed by the settings, so a restarted member is the same
node to the cluster; ``down`` stops every member and waits until no process is left.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from engine.cluster.local import LocalNode, NodeStatus, _alive, _chown_tree, _get_json
from engine.errors import ProvisionError
from engine.settings import LocalClusterSettings, LocalNodeSettings

logger = logging.getLogger(__name__)


class ClusterMember(LocalNode):
    """One member of the local cluster: a local node with its own folders and ports."""

    def __init__(self, node: LocalNodeSettings, cluster: LocalClusterSettings, index: int) -> None:
        member = node.model_copy(
            update={
                "port": cluster.http_port(index),
                "transport_port": cluster.transport_port(index),
                "heap": cluster.heap,
                "start_timeout_s": cluster.start_timeout_s,
            }
        )
        super().__init__(member)
        self.cluster = cluster
        self.index = index
        self.cluster_name = f"outfit-{cluster.name}"
        self.name = f"{self.cluster_name}-{index + 1}"
        self.root = self.home / cluster.name / f"node-{index + 1}"
        self.config_dir = self.root / "config"
        self.data_dir = self.root / "data"
        self.logs_dir = self.root / "logs"
        self.pid_file = self.root / "node.pid"

    def _all_names(self) -> list[str]:
        return [f"{self.cluster_name}-{i + 1}" for i in range(self.cluster.nodes)]

    def _write_config(self) -> None:
        if not (self.config_dir / "jvm.options").exists():
            # the distribution's jvm.options, log4j2.properties and keystore, once
            self.config_dir.parent.mkdir(parents=True, exist_ok=True)
            shutil.copytree(self.install_dir / "config", self.config_dir, dirs_exist_ok=True)
        seeds = [f"127.0.0.1:{self.cluster.transport_port(i)}" for i in range(self.cluster.nodes)]
        conf: dict[str, Any] = {
            "cluster.name": self.cluster_name,
            "node.name": self.name,
            "node.roles": ["cluster_manager", "data", "ingest"],
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            "network.host": "127.0.0.1",
            "http.port": self.s.port,
            "transport.port": self.s.transport_port,
            "discovery.seed_hosts": seeds,
            "cluster.initial_cluster_manager_nodes": self._all_names(),
            "cluster.routing.allocation.disk.threshold_enabled": False,
            "action.auto_create_index": True,
        }
        (self.config_dir / "opensearch.yml").write_text(
            "".join(f"{k}: {json.dumps(v)}\n" for k, v in conf.items())
        )
        user = self._run_user()
        if user is not None:
            _chown_tree(self.root, user.pw_uid, user.pw_gid)

    def _env(self) -> dict[str, str]:
        env = super()._env()
        env["OPENSEARCH_PATH_CONF"] = str(self.config_dir)
        return env

    def log_tail(self, lines: int = 40) -> str:
        for path in (self.logs_dir / f"{self.cluster_name}.log", self.logs_dir / "launcher.log"):
            if path.exists():
                try:
                    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                except OSError:
                    continue
        return "(no log yet)"

    def kill(self) -> int | None:
        """SIGKILL the member (a crash, for fault tests); returns the pid it had, None if none.
        Waits until the process is gone; its data folder stays for a restart."""
        pid = self.read_pid()
        if pid is None:
            return None
        os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 30.0
        while (_alive(pid) or Path(f"/proc/{pid}").exists()) and time.monotonic() < deadline:
            time.sleep(0.1)
        self.pid_file.unlink(missing_ok=True)
        return pid


@dataclass(frozen=True)
class ClusterStatus:
    nodes: tuple[NodeStatus, ...]
    health: str | None
    cluster_manager: str | None
    members: tuple[dict[str, Any], ...]  # _cat/nodes rows as the cluster sees them

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class LocalCluster:
    """Start, stop, inspect and (for fault tests) kill members of the local cluster."""

    def __init__(
        self, node: LocalNodeSettings, cluster: LocalClusterSettings, nodes: int | None = None
    ) -> None:
        if nodes is not None:
            cluster = cluster.model_copy(update={"nodes": nodes})
        self.settings = cluster
        self.members = [ClusterMember(node, cluster, i) for i in range(cluster.nodes)]

    @property
    def urls(self) -> list[str]:
        return [m.s.url for m in self.members]

    @property
    def url(self) -> str:
        """The comma-separated node list for ``OUTFIT_CLUSTER__URL``."""
        return ",".join(self.urls)

    def up(self, status: str = "yellow") -> ClusterStatus:
        """Install if needed, start every member not running (in parallel: the first election
        needs a majority of them), then wait until all have joined and health is ``status``."""
        t0 = time.monotonic()
        self.members[0].install()
        todo = [m for m in self.members if m.read_pid() is None]
        if todo:
            with ThreadPoolExecutor(max_workers=len(todo)) as pool:
                pids = list(pool.map(lambda m: m.start(), todo))
            logger.info("started %s (pids %s)", ", ".join(m.name for m in todo), pids)
        self.wait_formed(status=status)
        logger.info("cluster of %d up in %.1fs", len(self.members), time.monotonic() - t0)
        return self.status()

    def start_member(self, index: int, status: str = "yellow") -> int:
        """(Re)start one member (same name, same data) and wait until it has rejoined."""
        pid = self.members[index].start()
        self.wait_formed(status=status)
        return pid

    def kill_member(self, index: int) -> int | None:
        return self.members[index].kill()

    def wait_formed(self, status: str = "yellow", timeout_s: float | None = None) -> dict[str, Any]:
        """Until every member is in the cluster and health is at least ``status``."""
        timeout_s = timeout_s or self.settings.start_timeout_s
        want = len(self.members)
        deadline = time.monotonic() + timeout_s
        last = ""
        while time.monotonic() < deadline:
            for m in self.members:
                if m.read_pid() is None:
                    raise ProvisionError(
                        f"{m.name} exited during start-up", node=m.name, log_tail=m.log_tail()
                    )
            for url in self.urls:
                try:
                    health = _get_json(
                        f"{url}/_cluster/health?wait_for_nodes={want}"
                        f"&wait_for_status={status}&timeout=2s"
                    )
                except OSError as exc:  # not up yet, no cluster manager yet (503), timed out
                    last = f"{url}: {exc}"
                    continue
                if not health.get("timed_out") and health.get("number_of_nodes") == want:
                    return health
                last = f"{health.get('number_of_nodes')} of {want} nodes, {health.get('status')}"
            time.sleep(1.0)
        raise ProvisionError(
            f"cluster not formed after {timeout_s:.0f}s ({last})",
            log_tail=self.members[0].log_tail(),
        )

    def down(self, timeout_s: float = 60.0) -> list[str]:
        """Stop every member (SIGTERM, then SIGKILL after ``timeout_s``); returns the names of
        those that were running. Returns once no member process is left."""
        with ThreadPoolExecutor(max_workers=len(self.members)) as pool:
            stopped = list(pool.map(lambda m: m.down(timeout_s), self.members))
        return [m.name for m, s in zip(self.members, stopped, strict=True) if s]

    def status(self) -> ClusterStatus:
        nodes = tuple(self._member_status(m) for m in self.members)
        health = manager = None
        rows: list[dict[str, Any]] = []
        for m, st in zip(self.members, nodes, strict=True):
            if not st.running:
                continue
            try:
                health = str(_get_json(f"{m.s.url}/_cluster/health").get("status"))
                cat = _get_json(
                    f"{m.s.url}/_cat/nodes?format=json&full_id=true&h=id,name,port,node.role,"
                    "cluster_manager,heap.percent,heap.max"
                )
            except OSError:
                continue
            rows = [dict(r) for r in cat] if isinstance(cat, list) else []
            manager = next((r["name"] for r in rows if r.get("cluster_manager") == "*"), None)
            break
        return ClusterStatus(nodes, health, manager, tuple(sorted(rows, key=lambda r: r["name"])))

    @staticmethod
    def _member_status(m: ClusterMember) -> NodeStatus:
        pid = m.read_pid()
        if pid is None:
            return NodeStatus(running=False, pid=None, url=m.s.url)
        try:
            root = _get_json(m.s.url)
        except OSError:
            return NodeStatus(running=True, pid=pid, url=m.s.url, health="unreachable")
        return NodeStatus(
            running=True, pid=pid, url=m.s.url, version=root.get("version", {}).get("number")
        )
