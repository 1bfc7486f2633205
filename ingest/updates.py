"""Business-field updates (``python -m ingest update``): partial updates of price, stock,
rating, ... by id, no re-encoding; unknown ids are failures."""

from __future__ import annotations

import time
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from engine.backend import Backend
from engine.catalog.readers import MappingLike, as_mapping
from engine.documents import BUSINESS_FIELDS, business_fields
from engine.errors import ClusterUnavailable
from engine.settings import Settings
from ingest.readers import Format, RowFailure, detect_format, map_record, read_records
from ingest.report import Failure, IngestReport
from ingest.runner import LOOKUP_EXCLUDES, Run, aborted, batches, bulk_error


class BusinessUpdate(BaseModel):
    """A business-field update row: id plus any of price, discounted_price, rating, ..."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    id: str = Field(min_length=1, max_length=256)
    price: float | None = Field(default=None, ge=0)
    discounted_price: float | None = Field(default=None, ge=0)
    rating: float | None = None
    in_stock: bool | None = None
    sales: float | None = Field(default=None, ge=0)
    clicks: float | None = Field(default=None, ge=0)


def _business_rows(
    catalog: Path, fmt: Format | None, mapping: MappingLike
) -> Iterator[tuple[int, str | None, dict[str, Any] | RowFailure]]:
    cmap = as_mapping(mapping)
    fmt = fmt or cmap.format or detect_format(catalog)
    seen: set[str] = set()
    for line, rec in read_records(catalog, fmt):
        if isinstance(rec, RowFailure):
            yield line, None, rec
            continue
        record = map_record(rec, cmap, from_text=fmt == "csv")
        values = {k: record[k] for k in ("id", *BUSINESS_FIELDS) if record.get(k) is not None}
        rid = values.get("id")
        rid = None if rid is None or isinstance(rid, bool) else str(rid).strip() or None
        if rid is None:
            yield line, None, RowFailure("missing_id", "id: missing or empty")
            continue
        values["id"] = rid
        try:
            upd = BusinessUpdate.model_validate(values)
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = ".".join(str(p) for p in first["loc"]) or "row"
            yield line, rid, RowFailure("invalid_field", f"{loc}: {first['msg']}", rid)
            continue
        fields = upd.model_dump(exclude_unset=True, exclude={"id"})
        if not fields:
            yield (
                line,
                rid,
                RowFailure(
                    "no_business_fields",
                    f"no business field to update (expected any of {', '.join(BUSINESS_FIELDS)})",
                    rid,
                ),
            )
            continue
        if rid in seen:
            yield line, rid, RowFailure("duplicate_id", "duplicate id", rid)
            continue
        seen.add(rid)
        yield line, rid, fields


def update_products(
    settings: Settings,
    catalog: Path,
    *,
    fmt: Format | None = None,
    mapping: MappingLike = None,
    index: str | None = None,
    batch_size: int = 500,
    limit: int | None = None,
    failures_path: Path | None = None,
    backend: Backend | None = None,
    refresh: bool = True,
    progress: bool = True,
) -> IngestReport:
    """Partial updates of business fields (no re-encoding); unknown ids are failures."""
    catalog = Path(catalog)
    run = Run.start(
        settings, "update", catalog, index=index, backend=backend, failures_path=failures_path
    )
    index, backend, report, writer = run.index, run.backend, run.report, run.writer
    bar = tqdm(unit="item", desc=f"update {index}", disable=not progress)
    src_fields = [*BUSINESS_FIELDS, "discount_pct"]

    def flush(batch: list[tuple[int, str | None, dict[str, Any] | RowFailure]]) -> None:
        failures: list[Failure] = []
        updates: list[tuple[int, str, dict[str, Any]]] = []
        for line, rid, res in batch:
            if isinstance(res, RowFailure):
                failures.append(Failure(res.item_id or rid, line, "validate", res.reason, res.code))
            else:
                assert rid is not None
                updates.append((line, rid, res))
        t0 = time.perf_counter()
        existing = backend.mget(
            index, [rid for _, rid, _ in updates], source_excludes=LOOKUP_EXCLUDES
        )
        report.add_time("lookup", time.perf_counter() - t0, len(updates))
        actions: list[dict[str, Any]] = []
        meta: dict[str, int] = {}
        skipped = 0
        for line, rid, fields in updates:
            old = existing.get(rid)
            if old is None:
                failures.append(
                    Failure(rid, line, "update", "no such product in the index", "not_found")
                )
                continue
            merged = {k: old.get(k) for k in src_fields} | fields
            doc = business_fields(merged)
            doc = {k: v for k, v in doc.items() if k in fields or k == "discount_pct"}
            if all(old.get(k) == v for k, v in doc.items()):
                skipped += 1
                continue
            actions.append({"_op_type": "update", "_index": index, "_id": rid, "doc": doc})
            meta[rid] = line
        ok = 0
        if actions:
            t0 = time.perf_counter()
            ok, errors = backend.bulk(actions)
            report.add_time("index", time.perf_counter() - t0, len(actions))
            for err in errors:
                doc_id, status, reason = bulk_error(err)
                code = "not_found" if status == 404 else "update_rejected"
                failures.append(Failure(doc_id, meta.get(doc_id, 0), "update", reason, code))
        report.read += len(batch)
        report.indexed += ok
        report.skipped_unchanged += skipped
        report.add_failures(failures)
        writer.write(failures)
        bar.update(len(batch))

    try:
        for batch in batches(islice(_business_rows(catalog, fmt, mapping), limit), batch_size):
            flush(batch)
        if refresh:
            backend.refresh(index)
    except ClusterUnavailable as exc:
        report.wall_seconds = run.seconds()
        raise aborted(
            report,
            exc.message,
            f"update stopped: {exc.message}; updates are idempotent, re-run the command",
            updated=report.indexed,
        ) from exc
    finally:
        bar.close()
        writer.close()
    return run.done()
