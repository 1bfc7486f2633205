"""How busy the machine's CPUs are between two samples (Linux ``/proc/stat``), for load tests
that want to know whether a higher concurrency has idle cores left to use."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.settings import Settings


def cpu_times() -> tuple[float, float] | None:
    """(busy, total) jiffies of all CPUs from ``/proc/stat`` (None where there is none)."""
    try:
        with open("/proc/stat") as f:
            fields = [float(x) for x in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    total = sum(fields[:8])  # user nice system idle iowait irq softirq steal
    return total - idle, total


def busy_cores(
    before: tuple[float, float] | None, after: tuple[float, float] | None, cpus: int
) -> float | None:
    """Mean busy cores between two :func:`cpu_times` samples."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return round(cpus * (after[0] - before[0]) / (after[1] - before[1]), 2)


def listening_pid(port: int) -> int | None:
    """The pid of the local process listening on TCP ``port`` (None if none is visible)."""
    import psutil

    try:
        conns = psutil.net_connections(kind="tcp")
    except (psutil.AccessDenied, OSError):
        return None
    for c in conns:
        if c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port and c.pid:
            return int(c.pid)
    return None


def process_cpu_s(pid: int | None, children: bool = True) -> float | None:
    """CPU seconds (user + system) used so far by ``pid`` and, with ``children``, its live
    descendants (an API's worker processes); None when the process cannot be read."""
    import psutil

    if pid is None:
        return None
    try:
        proc = psutil.Process(pid)
        procs = [proc, *(proc.children(recursive=True) if children else [])]
    except (psutil.Error, OSError):
        return None
    total = 0.0
    for p in procs:
        try:
            t = p.cpu_times()
        except (psutil.Error, OSError):
            continue  # a child that ended in between
        total += t.user + t.system
    return total


class CpuByProcess:
    """CPU milliseconds per request of named processes (load generator, API, node) over a timed
    phase: ``start()``, send ``n`` requests, ``per_request(n)``. Tells where a request's CPU goes
    and whether it grows with concurrency (contention) or stays put (idle cores left)."""

    def __init__(self, pids: dict[str, int | None], alone: tuple[str, ...] = ()) -> None:
        """``pids``: name -> pid (None: not on this machine), each counted with its descendants
        except the names in ``alone`` (the load generator, whose child is the API)."""
        self.pids = pids
        self.alone = set(alone)
        self._start: dict[str, float | None] = {}

    def sample(self) -> dict[str, float | None]:
        return {
            name: process_cpu_s(pid, children=name not in self.alone)
            for name, pid in self.pids.items()
        }

    def start(self) -> None:
        self._start = self.sample()

    def per_request(self, n: int) -> dict[str, float | None]:
        end = self.sample()
        out: dict[str, float | None] = {}
        for name, t1 in end.items():
            t0 = self._start.get(name)
            out[name] = (
                None if t0 is None or t1 is None or n <= 0 else round(1000 * (t1 - t0) / n, 2)
            )
        return out


def format_cpu_split(split: dict[str, float | None] | None) -> str:
    """``1.2+5.3+6.1=12.6`` (client + API + node CPU ms per request), ``?`` for a part unread."""
    if not split:
        return ""
    parts = [split.get(k) for k in ("client", "api", "node")]
    known = [v for v in parts if v is not None]
    text = "+".join("?" if v is None else f"{v:g}" for v in parts)
    return f"{text}={sum(known):.1f}" if known else text


def node_pid(settings: Settings) -> int | None:
    """The pid of the node serving the first configured URL when it runs on this machine."""
    from urllib.parse import urlsplit

    url = (settings.cluster.hosts or [settings.local_node.url])[0]
    parts = urlsplit(url if "://" in url else f"http://{url}")
    if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
        return None
    return listening_pid(parts.port or 9200)
