"""A local single-node Elasticsearch from Maven Central, run as a non-root user.

``python -m engine.cluster up --engine elasticsearch``. The artifact is
``org.elasticsearch.distribution.integ-test-zip:elasticsearch:<v>@zip`` (~97 MB): the server with
``dense_vector`` (HNSW, int8, ``bit``), ``knn`` search and BM25, and only the modules
transport-netty4, x-pack-core, x-pack-security and apm: no lang-mustache, lang-painless,
analysis-common or rest-root (``GET /`` answers 405, so the version comes from
``GET /_nodes/_local``). Those module jars are not on Maven Central, so they cannot be added.

Version 8.19.0: the last 8.x minor (``bit`` vectors with Hamming since 8.15, int8_hnsw, nested
k-NN, k-NN filters); 8.x runs on the JDK 17 the OpenSearch node uses, 9.x needs Java 21+.

Layout under ``ElasticsearchNodeSettings.home`` (git-ignored), like the OpenSearch node's::

    cache/  elasticsearch-<v>/  data/  logs/  node.pid

Downloading (``mvn``, sha256 manifest) and the helpers are shared with
:mod:`engine.cluster.install` and :mod:`engine.cluster.local`.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import zipfile
from pathlib import Path

from engine.cluster.artifacts import Artifact
from engine.cluster.install import _sha256
from engine.cluster.local import LocalNode, NodeStatus, _get_json
from engine.errors import ProvisionError
from engine.settings import ElasticsearchNodeSettings

logger = logging.getLogger(__name__)

# sha256 of the pinned distributions, recorded from Maven Central (whose sha1 mvn checks too).
ES_SHA256: dict[str, str] = {
    "elasticsearch-8.19.0.zip": "14833b2d86c30656901f92049f81fb5777a8e4545413c8656cd1a21b55173033",
}
ES_VERSIONS = ("8.19.0",)
ES_MODULES = ("apm", "transport-netty4", "x-pack-core", "x-pack-security")


def es_distribution(version: str) -> Artifact:
    if version not in ES_VERSIONS:
        raise ProvisionError(
            f"Elasticsearch {version} is not a pinned version; supported: {', '.join(ES_VERSIONS)}",
            version=version,
        )
    return Artifact(
        "org.elasticsearch.distribution.integ-test-zip", "elasticsearch", version, "zip"
    )


def es_config(s: ElasticsearchNodeSettings, data_dir: Path, logs_dir: Path) -> dict[str, str]:
    """``elasticsearch.yml``: loopback only, single node, security off (local use only)."""
    return {
        "cluster.name": "outfit-local-es",
        "node.name": "outfit-local-es-1",
        "path.data": str(data_dir),
        "path.logs": str(logs_dir),
        "network.host": "127.0.0.1",
        "http.port": str(s.port),
        "transport.port": str(s.transport_port),
        "discovery.type": "single-node",
        "xpack.security.enabled": "false",
        "cluster.routing.allocation.disk.threshold_enabled": "false",
        "action.auto_create_index": "true",
    }


class ElasticsearchNode(LocalNode):
    """Provision, start, stop and inspect the local Elasticsearch node.

    Reuses the OpenSearch node's download (``fetch_all``), user, pid and stop logic; what
    differs is the installation (one zip, no modules or plugins to add), the configuration,
    the launcher's environment and the status (no ``GET /``)."""

    product = "Elasticsearch"
    launcher = "elasticsearch"
    port_setting = "OUTFIT_ELASTICSEARCH_NODE__PORT"

    def __init__(self, settings: ElasticsearchNodeSettings) -> None:  # noqa: D107
        # not NodeInstaller.__init__: that resolves an OpenSearch bill of materials
        self.s = settings
        self.distribution = es_distribution(settings.version)
        self.home = settings.home.resolve()
        self.cache = self.home / "cache"
        self.install_dir = self.home / f"elasticsearch-{settings.version}"
        self.data_dir = self.home / "data"
        self.logs_dir = self.home / "logs"
        self.pid_file = self.home / "node.pid"

    # ------------------------------------------------------------------ install
    def _install_marker(self) -> dict[str, object]:
        return {"engine": "elasticsearch", "version": self.s.version}

    def install(self) -> None:
        if self.is_installed():
            logger.info(
                "Elasticsearch %s already installed at %s", self.s.version, self.install_dir
            )
            return
        t0 = time.monotonic()
        path = self.fetch_all([self.distribution])[self.distribution]
        digest = _sha256(path)
        pinned = ES_SHA256[self.distribution.filename]
        if digest != pinned:
            path.unlink()
            raise ProvisionError(f"{path.name}: sha256 {digest} does not match the pinned {pinned}")
        if self.install_dir.exists():
            shutil.rmtree(self.install_dir)
        staging = self.home / "staging"
        if staging.exists():
            shutil.rmtree(staging)
        with zipfile.ZipFile(path) as zf:
            zf.extractall(staging)
        (staging / f"elasticsearch-{self.s.version}").rename(self.install_dir)
        shutil.rmtree(staging)
        for script in (self.install_dir / "bin").iterdir():
            script.chmod(0o755)
        (self.install_dir / "installed.json").write_text(
            json.dumps(self._install_marker(), indent=2)
        )
        logger.info("installed Elasticsearch %s in %.1fs", self.s.version, time.monotonic() - t0)

    # ------------------------------------------------------------------ run
    def _write_config(self) -> None:
        conf = es_config(self.s, self.data_dir, self.logs_dir)
        (self.install_dir / "config" / "elasticsearch.yml").write_text(
            "".join(f'{k}: "{v}"\n' for k, v in conf.items())
        )

    def _env(self) -> dict[str, str]:
        return {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "ES_JAVA_HOME": str(self.java_home()),
            "ES_PATH_CONF": str(self.install_dir / "config"),
            "ES_JAVA_OPTS": f"-Xms{self.s.heap} -Xmx{self.s.heap}",
            "LANG": "C.UTF-8",
        }

    def status(self) -> NodeStatus:
        pid = self.read_pid()
        if pid is None:
            return NodeStatus(running=False, pid=None, url=self.s.url)
        try:
            health = _get_json(f"{self.s.url}/_cluster/health")
            nodes = _get_json(f"{self.s.url}/_nodes/_local/plugins")
        except OSError:
            return NodeStatus(running=True, pid=pid, url=self.s.url, health="unreachable")
        node = next(iter(nodes.get("nodes", {}).values()), {})
        return NodeStatus(
            running=True,
            pid=pid,
            url=self.s.url,
            version=node.get("version"),
            plugins=tuple(sorted(p["name"] for p in node.get("plugins", []))),
            modules=tuple(sorted(m["name"] for m in node.get("modules", []))),
            health=health.get("status"),
        )

    def log_tail(self, lines: int = 40) -> str:
        for name in ("outfit-local-es.log", "launcher.log"):
            path = self.logs_dir / name
            if path.exists():
                try:
                    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                except OSError:
                    continue
        return "(no log yet)"
