"""The product pipeline's indexing thread: sends encoded batches with
:meth:`engine.backend.Backend.bulk` strictly in row order, then records each batch's failures and
advances the checkpoint."""

from __future__ import annotations

import contextlib
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.backend import Backend
from ingest.checkpoint import Checkpoint, save_checkpoint
from ingest.report import Failure, FailureWriter, IngestReport
from ingest.runner import bulk_error

if TYPE_CHECKING:
    from ingest.product_stages import PipelineOptions


@dataclass
class IndexJob:
    actions: list[dict[str, Any]]
    meta: dict[str, tuple[int, str, bool]]  # doc id -> (line, "index" | "update", text-only)
    failures: list[Failure]
    rows: int
    rows_end: int
    skipped: int
    images: int
    dropped: int


class IndexerStopped(Exception):
    """The indexing thread is gone (its error is on the thread)."""


class Indexer(threading.Thread):
    """Sends queued batches in order, then records failures and advances the checkpoint."""

    def __init__(
        self,
        backend: Backend,
        jobs: queue.Queue[IndexJob | None],
        report: IngestReport,
        writer: FailureWriter,
        checkpoint: Checkpoint,
        cp_path: Path,
        options: PipelineOptions,
        bar: Any,
    ) -> None:
        super().__init__(name="ingest-indexer", daemon=True)
        self.backend = backend
        self.jobs = jobs
        self.report = report
        self.writer = writer
        self.checkpoint = checkpoint
        self.cp_path = cp_path
        self.options = options
        self.bar = bar
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while True:
                job = self.jobs.get()
                if job is None:
                    return
                self._send(job)
        except BaseException as exc:  # noqa: BLE001 - handed over to the main thread
            self.error = exc

    def _send(self, job: IndexJob) -> None:
        failures = list(job.failures)
        ok = 0
        rejected: set[str] = set()
        if job.actions:
            t0 = time.perf_counter()
            ok, errors = self.backend.bulk(
                job.actions,
                max_retries=self.options.bulk_retries,
                initial_backoff_s=self.options.bulk_backoff_s,
            )
            self.report.add_time("index", time.perf_counter() - t0, len(job.actions))
            for err in errors:
                doc_id, status, reason = bulk_error(err)
                line = job.meta.get(doc_id, (0, "index", False))[0]
                code = "index_rejected" if status and status < 500 else "index_failed"
                failures.append(Failure(doc_id or None, line, "index", reason, code))
                rejected.add(doc_id)
        r = self.report
        r.read += job.rows
        r.indexed += ok
        r.skipped_unchanged += job.skipped
        r.add_failures(failures)
        r.images_decoded += job.images
        r.secondary_images_dropped += job.dropped
        for doc_id, (_, kind, text_only) in job.meta.items():
            if doc_id in rejected:
                continue
            if kind == "update":
                r.partial_updates += 1
            else:
                r.encoded += 1
                r.text_only += int(text_only)
        # failures first, then the checkpoint that covers them
        self.writer.write(failures)
        cp = self.checkpoint
        cp.rows_done = job.rows_end
        cp.failures_offset = self.writer.offset
        for key, value in (
            ("read", job.rows),
            ("indexed", ok),
            ("failed", len(failures)),
            ("skipped_unchanged", job.skipped),
        ):
            cp.counts[key] = cp.counts.get(key, 0) + value
        save_checkpoint(cp, self.cp_path)
        if self.bar is not None:
            self.bar.update(job.rows)


def stop_indexer(jobs: queue.Queue[IndexJob | None], indexer: Indexer) -> None:
    """Drop queued (never checkpointed) work and let the thread finish its current batch."""
    while True:
        try:
            jobs.get_nowait()
        except queue.Empty:
            break
    if indexer.is_alive():
        with contextlib.suppress(queue.Full):
            jobs.put(None, timeout=1.0)
        indexer.join(timeout=300)
