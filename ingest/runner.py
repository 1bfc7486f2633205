"""What every ingest command shares: batching, the bulk error of one item, the stored fields a
lookup leaves out, and the :class:`~engine.errors.IngestAborted` of a run the cluster stopped."""

from __future__ import annotations

import resource
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, TypeVar

from engine.documents import VECTOR_FIELDS
from engine.errors import IngestAborted
from ingest.report import IngestReport

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
