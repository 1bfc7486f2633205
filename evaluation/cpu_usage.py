"""How busy the machine's CPUs are between two samples (Linux ``/proc/stat``), for load tests
that want to know whether a higher concurrency has idle cores left to use."""

from __future__ import annotations


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
