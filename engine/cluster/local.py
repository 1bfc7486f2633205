"""A local single-node OpenSearch assembled from Maven Central and run as a non-root user.

Layout under ``LocalNodeSettings.home`` (git-ignored)::

    cache/                 downloaded artifacts + manifest.json (sha256 of each)
    opensearch-<v>/        the installation (distribution + assembled modules + plugins)
    opensearch-<v>/installed.json   what was installed (reused by the next ``up``)
    data/ logs/            node data and logs
    node.pid               pid of the running node

Installing (download through ``mvn``, assembly) is :mod:`engine.cluster.install`; this module
runs, stops and inspects the node.
"""

from __future__ import annotations

import json
import logging
import os
import pwd
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from engine.cluster.install import NodeInstaller
from engine.errors import ProvisionError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class NodeStatus:
    running: bool
    pid: int | None
    url: str
    version: str | None = None
    plugins: tuple[str, ...] = ()
    modules: tuple[str, ...] = ()
    health: str | None = None


class LocalNode(NodeInstaller):
    """Provision, start, stop and inspect the local node."""

    product = "OpenSearch"
    launcher = "opensearch"  # bin/<launcher> -d -p <pid file>
    port_setting = "OUTFIT_LOCAL_NODE__PORT"

    # ------------------------------------------------------------------ run
    def _write_config(self) -> None:
        conf = {
            "cluster.name": "outfit-local",
            "node.name": "outfit-local-1",
            "path.data": str(self.data_dir),
            "path.logs": str(self.logs_dir),
            "network.host": "127.0.0.1",
            "http.port": str(self.s.port),
            "transport.port": str(self.s.transport_port),
            "discovery.type": "single-node",
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.auto_create_index": "true",
        }
        (self.install_dir / "config" / "opensearch.yml").write_text(
            "".join(f'{k}: "{v}"\n' for k, v in conf.items())
        )

    def _run_user(self) -> pwd.struct_passwd | None:
        """The user the node runs as: a dedicated system user when we are root, else ourselves."""
        if os.geteuid() != 0:
            return None
        try:
            return pwd.getpwnam(self.s.user)
        except KeyError:
            logger.info("creating system user %s", self.s.user)
            proc = subprocess.run(
                [
                    "useradd",
                    "--system",
                    "--no-create-home",
                    "--shell",
                    "/usr/sbin/nologin",
                    self.s.user,
                ],
                capture_output=True,
                text=True,
                check=False,
            )
            if proc.returncode != 0:
                raise ProvisionError(
                    f"could not create user {self.s.user!r}: {proc.stderr.strip()}"
                ) from None
            return pwd.getpwnam(self.s.user)

    def _check_traversable(self, user: pwd.struct_passwd) -> None:
        for parent in [self.home, *self.home.parents]:
            mode = parent.stat().st_mode
            if parent.stat().st_uid != user.pw_uid and not mode & 0o001:
                raise ProvisionError(
                    f"{parent} is not traversable by user {user.pw_name!r}; "
                    "put the node home elsewhere with OUTFIT_LOCAL_NODE__HOME",
                )

    def read_pid(self) -> int | None:
        try:
            pid = int(self.pid_file.read_text().strip())
        except (FileNotFoundError, ValueError):
            return None
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return pid
        return pid

    def up(self) -> NodeStatus:
        """Install if needed and start the node; reuse a running one. Blocks until healthy."""
        pid = self.read_pid()
        if pid is not None:
            logger.info("%s node already running (pid %d)", self.product, pid)
            self.wait_healthy()
            return self.status()
        t0 = time.monotonic()
        pid = self.start()
        self.wait_healthy()
        logger.info(
            "%s up (pid %d) in %.1fs at %s", self.product, pid, time.monotonic() - t0, self.s.url
        )
        return self.status()

    def start(self) -> int:
        """Install if needed and launch the node process (not waiting for it to be healthy);
        returns its pid. The multi-node cluster (:mod:`engine.cluster.multi`) starts its
        members this way, then waits for them together."""
        if _port_open(self.s.port):
            raise ProvisionError(
                f"port {self.s.port} is taken by another process (not our node); stop it, set "
                f"{self.port_setting}, or point OUTFIT_CLUSTER__URL at that cluster",
                port=self.s.port,
            )
        self.install()
        self._write_config()
        for d in (self.data_dir, self.logs_dir):
            d.mkdir(parents=True, exist_ok=True)
        user = self._run_user()
        if user is not None:
            self._check_traversable(user)
            for path in (self.install_dir, self.data_dir, self.logs_dir):
                _chown_tree(path, user.pw_uid, user.pw_gid)
        self.pid_file.unlink(missing_ok=True)
        # -p writes the pid file; it must be writable by the node's user.
        pid_dir = self.logs_dir
        node_pid = pid_dir / f"{self.launcher}.pid"
        node_pid.unlink(missing_ok=True)
        cmd = [str(self.install_dir / "bin" / self.launcher), "-d", "-p", str(node_pid)]
        stdout = (self.logs_dir / "launcher.log").open("ab")
        try:
            proc = subprocess.run(
                cmd,
                env=self._env(),
                stdout=stdout,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                user=user.pw_uid if user else None,
                group=user.pw_gid if user else None,
                start_new_session=True,
                check=False,
                timeout=self.s.start_timeout_s,
            )
        finally:
            stdout.close()
        if proc.returncode != 0:
            raise ProvisionError(
                f"{self.product} failed to start (exit {proc.returncode})", log_tail=self.log_tail()
            )
        pid = self._wait_pid_file(node_pid)
        self.pid_file.write_text(str(pid))
        return pid

    def _wait_pid_file(self, node_pid: Path, timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                return int(node_pid.read_text().strip())
            except (FileNotFoundError, ValueError):
                time.sleep(0.5)
        raise ProvisionError(
            f"{self.product} exited during start-up (no pid file)", log_tail=self.log_tail()
        )

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.s.start_timeout_s
        last = ""
        while time.monotonic() < deadline:
            if self.read_pid() is None:
                raise ProvisionError(
                    f"{self.product} exited during start-up", log_tail=self.log_tail()
                )
            try:
                health = self._get_json("/_cluster/health")
                if health.get("status") in ("green", "yellow"):
                    return
                last = str(health.get("status"))
            except OSError as exc:
                last = str(exc)
            time.sleep(1.0)
        raise ProvisionError(
            f"{self.product} not healthy after {self.s.start_timeout_s:.0f}s ({last})",
            log_tail=self.log_tail(),
        )

    def down(self, timeout_s: float = 60.0) -> bool:
        """Stop the node; returns False when none was running. Leaves no process behind."""
        pid = self.read_pid()
        if pid is None:
            self.pid_file.unlink(missing_ok=True)
            return False
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not _alive(pid):
                break
            time.sleep(0.5)
        else:
            logger.warning("node did not stop in %.0fs; killing", timeout_s)
            os.kill(pid, signal.SIGKILL)
            while _alive(pid):
                time.sleep(0.2)
        # the exited JVM lingers as a zombie until init reaps it: wait for that too
        reap_deadline = time.monotonic() + 10.0
        while Path(f"/proc/{pid}").exists() and time.monotonic() < reap_deadline:
            time.sleep(0.2)
        self.pid_file.unlink(missing_ok=True)
        return True

    def status(self) -> NodeStatus:
        pid = self.read_pid()
        if pid is None:
            return NodeStatus(running=False, pid=None, url=self.s.url)
        try:
            root = self._get_json("/")
            health = self._get_json("/_cluster/health")
            plugins = self._get_json("/_cat/plugins?format=json")
            nodes = self._get_json("/_nodes/plugins")
        except OSError:
            return NodeStatus(running=True, pid=pid, url=self.s.url, health="unreachable")
        modules: list[str] = []
        for node in nodes.get("nodes", {}).values():
            modules = sorted(m["name"] for m in node.get("modules", []))
        return NodeStatus(
            running=True,
            pid=pid,
            url=self.s.url,
            version=root.get("version", {}).get("number"),
            plugins=tuple(sorted({p["component"] for p in plugins}))
            if isinstance(plugins, list)
            else (),
            modules=tuple(modules),
            health=health.get("status"),
        )

    def _get_json(self, path: str) -> dict:  # type: ignore[type-arg]
        """GET a path of this node (the secured node overrides it with TLS and credentials)."""
        return _get_json(f"{self.s.url}{path}")

    def log_tail(self, lines: int = 40) -> str:
        candidates = [self.logs_dir / "outfit-local.log", self.logs_dir / "launcher.log"]
        for path in candidates:
            if path.exists():
                try:
                    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
                except OSError:
                    continue
        return "(no log yet)"


# ---------------------------------------------------------------------- helpers
def _chown_tree(root: Path, uid: int, gid: int) -> None:
    os.chown(root, uid, gid)
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            os.chown(os.path.join(dirpath, name), uid, gid, follow_symlinks=False)


def _port_open(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.5)
        return s.connect_ex(("127.0.0.1", port)) == 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie child counts as gone.
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().split()[2] != "Z"
    except OSError:
        return False


def _get_json(url: str) -> dict:  # type: ignore[type-arg]
    """Plain HTTP GET against the local, security-less node (no client dependency needed)."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback only
        data = json.loads(resp.read().decode())
    return data  # type: ignore[no-any-return]
