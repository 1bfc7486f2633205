"""Deletes by id (``python -m ingest delete``); ids already absent count as ``not_found``."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from engine.backend import Backend
from engine.errors import ClusterUnavailable, InvalidInput
from engine.settings import Settings
from ingest.report import Failure, IngestReport
from ingest.runner import Run, aborted, batches, bulk_error


def read_ids(path: Path) -> Iterator[tuple[int, str]]:
    """Ids from a file: one a line (plain text, or JSON objects with an ``id``); a first line
    ``id`` is taken as a header."""
    path = Path(path)
    if not path.is_file():
        raise InvalidInput(f"ids file not found: {path}", path=str(path))
    with path.open("r", encoding="utf-8") as fh:
        for lineno, line in enumerate(fh, start=1):
            text = line.strip()
            if not text or (lineno == 1 and text.lower() == "id"):
                continue
            if text.startswith("{"):
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError:
                    obj = None
                value = obj.get("id") if isinstance(obj, dict) else None
                text = "" if value is None else str(value).strip()
            yield lineno, text


def delete_products(
    settings: Settings,
    ids_file: Path,
    *,
    index: str | None = None,
    batch_size: int = 1000,
    failures_path: Path | None = None,
    backend: Backend | None = None,
    refresh: bool = True,
) -> IngestReport:
    """Delete the listed ids; ids already absent count as ``not_found`` (and unchanged)."""
    run = Run.start(
        settings, "delete", ids_file, index=index, backend=backend, failures_path=failures_path
    )
    index, backend, report, writer = run.index, run.backend, run.report, run.writer

    def flush(batch: Sequence[tuple[int, str]]) -> None:
        failures: list[Failure] = []
        seen_in_batch: dict[str, int] = {}
        actions = []
        for line, rid in batch:
            if not rid:
                failures.append(Failure(None, line, "validate", "empty id", "missing_id"))
                continue
            seen_in_batch[rid] = line
            actions.append({"_op_type": "delete", "_index": index, "_id": rid})
        t0 = time.perf_counter()
        ok, errors = backend.bulk(actions) if actions else (0, [])
        report.add_time("index", time.perf_counter() - t0, len(actions))
        not_found = 0
        for err in errors:
            doc_id, status, reason = bulk_error(err)
            if status == 404:
                not_found += 1
            else:
                failures.append(
                    Failure(doc_id, seen_in_batch.get(doc_id, 0), "delete", reason, "delete_failed")
                )
        report.read += len(batch)
        report.indexed += ok
        report.not_found += not_found
        report.skipped_unchanged += not_found
        report.add_failures(failures)
        writer.write(failures)

    seen: set[str] = set()
    dup: list[Failure] = []

    def first_time(ids: Iterator[tuple[int, str]]) -> Iterator[tuple[int, str]]:
        for line, rid in ids:
            if rid and rid in seen:
                dup.append(Failure(rid, line, "validate", "duplicate id", "duplicate_id"))
                report.read += 1
                continue
            seen.add(rid)
            yield line, rid

    try:
        for batch in batches(first_time(read_ids(Path(ids_file))), batch_size):
            flush(batch)
        report.add_failures(dup)
        writer.write(dup)
        if refresh:
            backend.refresh(index)
    except ClusterUnavailable as exc:
        raise aborted(
            report, exc.message, f"delete stopped: {exc.message}; re-run the command"
        ) from exc
    finally:
        writer.close()
    return run.done()
