"""What the ingest commands share: batching, the bulk error of one item, the stored fields a
lookup leaves out, the start and end of an ``update`` / ``delete`` run (:class:`Run`) and the
:class:`~engine.errors.IngestAborted` of a run the cluster stopped."""

from __future__ import annotations

import resource
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from engine.backend import Backend
from engine.documents import VECTOR_FIELDS
from engine.engines import connect
from engine.errors import IngestAborted
from engine.settings import Settings
from ingest.report import FailureWriter, IngestReport

# Source fields not needed when looking up existing documents.
LOOKUP_EXCLUDES = [*VECTOR_FIELDS, "attr_prob"]

T = TypeVar("T")


def batches(items: Iterable[T], size: int) -> Iterator[list[T]]:
    """``items`` in lists of ``size`` (the last one shorter)."""
    batch: list[T] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def bulk_error(err: Mapping[str, Any]) -> tuple[str, int, str]:
    """(doc id, status, reason) of one bulk error item."""
    _, body = next(iter(err.items()))
    body = body if isinstance(body, dict) else {}
    status = int(body.get("status", 0) or 0)
    e = body.get("error")
    if isinstance(e, dict):
        reason = f"{e.get('type', 'error')}: {e.get('reason', '')}"
        cause = e.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            reason += f" ({cause.get('reason')})"
    else:
        reason = str(e or body.get("result") or "bulk item failed")
    return str(body.get("_id", "")), status, reason


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def aborted(report: IngestReport, reason: str, message: str, **details: Any) -> IngestAborted:
    """The error of a run the cluster stopped, carrying the run's partial report as
    ``exc.report`` (``report.aborted_reason`` = ``reason``)."""
    report.aborted_reason = reason
    exc = IngestAborted(message, **details)
    exc.report = report  # type: ignore[attr-defined]
    return exc


@dataclass
class Run:
    """One ``update`` / ``delete`` run: its index and cluster (the configured ones by default),
    its report and failures file, and when it started."""

    index: str
    backend: Backend
    report: IngestReport
    writer: FailureWriter
    started: float

    @classmethod
    def start(
        cls,
        settings: Settings,
        command: str,
        source: Path,
        *,
        index: str | None,
        backend: Backend | None,
        failures_path: Path | None,
    ) -> Run:
        started = time.perf_counter()
        index = index or settings.cluster.products_index
        backend = backend or connect(settings)
        report = IngestReport(
            command=command,
            index=index,
            catalog=str(source),
            failures_path=str(failures_path) if failures_path else None,
        )
        return cls(index, backend, report, FailureWriter(failures_path), started)

    def seconds(self) -> float:
        return time.perf_counter() - self.started

    def done(self) -> IngestReport:
        """The report of a run that went through."""
        self.report.completed = True
        self.report.wall_seconds = self.seconds()
        return self.report
