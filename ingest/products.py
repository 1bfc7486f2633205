"""The product ingest pipeline: catalog rows -> documents in the products index
(``python -m ingest products``).

The stages are :mod:`ingest.product_stages` (images, encoding) and :mod:`ingest.indexer` (the
indexing thread); this module runs them over a catalog, with checkpoints and resume.

Stages (each row ends as exactly one of indexed / failed / skipped_unchanged)::

    read+validate -> lookup stored content_hash (mget) -> fetch image bytes + sha1
      -> unchanged? skip (or partial update of plain fields)
      -> decode + crop + colour (worker threads) -> encode (batched, one model)
      -> attributes + binary code -> product_to_document -> bulk index (background thread)
      -> failures + checkpoint

The main thread reads and validates rows, looks up the stored ``content_hash`` of each batch's
ids (one ``mget``) and submits the batch's image work to a thread pool ``prefetch`` batches
ahead, so decoding overlaps encoding. Encoded batches go through a bounded queue to an indexing
thread, which sends them with :meth:`engine.backend.Backend.bulk` strictly in row order, then
writes the batch's failures and advances the checkpoint. An item whose content hash (model text,
image bytes, model version) is unchanged is neither decoded nor encoded again; if only other
fields changed (price, brand, ...) it gets a partial update. Document ids are product ids, so
re-running or resuming never duplicates anything.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import queue
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.backend import Backend
from engine.bundle import fit_report
from engine.catalog.readers import MappingLike, as_mapping
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.engines import connect
from engine.errors import ClusterUnavailable, IngestAborted, InvalidInput
from engine.settings import Settings
from ingest.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from ingest.encode import Encoder, JointEncoder
from ingest.images import ImageOptions
from ingest.indexer import Indexer, IndexerStopped, IndexJob, stop_indexer
from ingest.product_stages import Batch, PipelineOptions, ProductStages
from ingest.readers import Format, Row, count_rows, detect_format, iter_rows
from ingest.report import FailureWriter, IngestReport
from ingest.runner import aborted, batches, peak_rss_mb

logger = logging.getLogger(__name__)


class RowSource:
    """Rows from ``start_row`` on, at most ``limit``; times reading; knows if rows were left."""

    def __init__(
        self,
        rows: Iterator[Row],
        start_row: int,
        limit: int | None,
        report: IngestReport,
        taxonomy: Taxonomy = DEFAULT_TAXONOMY,
    ) -> None:
        self.rows = rows
        self.start_row = start_row
        self.limit = limit
        self.report = report
        self.taxonomy = taxonomy
        self.rows_left = False
        self.unmapped: Counter[str] = Counter()
        self.types: Counter[str] = Counter()

    def __iter__(self) -> Iterator[Row]:
        taken = 0
        while True:
            t0 = time.perf_counter()
            r = next(self.rows, None)
            if r is None:
                self.report.add_time("read", time.perf_counter() - t0, 0)
                return
            if r.seq < self.start_row:
                self.report.add_time("read", time.perf_counter() - t0, 0)
                continue
            if self.limit is not None and taken >= self.limit:
                self.rows_left = True
                return
            taken += 1
            if r.product is not None:
                if r.product.article_type:
                    self.types[r.product.article_type] += 1
                if self.taxonomy.slot_for(r.product) is None:
                    self.unmapped[r.product.article_type or "(no type)"] += 1
            self.report.add_time("read", time.perf_counter() - t0, 1)
            yield r


def default_failures_path(index: str, state_dir: Path | None = None) -> Path:
    return checkpoint_path(index, state_dir).with_name(f"{index}.failures.jsonl")


def _aborted(report: IngestReport, err: ClusterUnavailable, rows_done: int) -> IngestAborted:
    report.completed = False
    return aborted(
        report,
        err.message,
        f"ingest stopped: {err.message}. Rows before {rows_done} are safely indexed (checkpoint "
        f"{report.checkpoint_path}); re-run the same command with --resume to continue",
        rows_done=rows_done,
        checkpoint=report.checkpoint_path,
    )


def ingest_products(
    settings: Settings,
    catalog: Path,
    *,
    images_dir: Path | None = None,
    fmt: Format | None = None,
    mapping: MappingLike = None,
    index: str | None = None,
    batch_size: int = 64,
    workers: int = 2,
    resume: bool = False,
    limit: int | None = None,
    failures_path: Path | None = None,
    state_dir: Path | None = None,
    backend: Backend | None = None,
    encoder: Encoder | None = None,
    options: PipelineOptions | None = None,
    progress: bool = True,
    feature_cache: Path | None = None,
) -> IngestReport:
    """Ingest a catalog into the products index (default ``settings.cluster.products_index``).

    Returns this run's :class:`IngestReport`. Raises :class:`engine.errors.IngestAborted` (the
    partial report as ``exc.report``) when the cluster goes away: the checkpoint then covers
    every acknowledged batch and ``resume=True`` continues after it. ``encoder`` / ``backend``
    default to the trained joint model and the configured cluster; ``feature_cache`` is a
    folder of frozen backbone features reused by content (see :func:`engine.models.feature_cache.open_text_cache`).
    """
    t_start = time.perf_counter()
    cmap = as_mapping(mapping)
    opts = dataclasses.replace(options or PipelineOptions(), taxonomy=cmap.build_taxonomy())
    fmt = fmt or cmap.format
    mapping = cmap
    catalog = Path(catalog)
    if batch_size < 1:
        raise InvalidInput("batch_size must be at least 1", batch_size=batch_size)
    if not catalog.is_file():
        raise InvalidInput(f"catalog file not found: {catalog}", path=str(catalog))
    fmt = fmt or detect_format(catalog)
    index = index or settings.cluster.products_index
    backend = backend or connect(settings)
    cp_path = checkpoint_path(index, state_dir)
    failures_path = Path(failures_path or default_failures_path(index, state_dir))
    report = IngestReport(
        command="products",
        index=index,
        catalog=str(catalog),
        failures_path=str(failures_path),
        checkpoint_path=str(cp_path),
    )

    cp = Checkpoint.for_catalog(index, catalog)
    resume_offset: int | None = None
    if resume:
        old = load_checkpoint(cp_path)
        if old is None:
            logger.info("no checkpoint at %s: starting from the first row", cp_path)
        elif not old.matches(cp):
            raise InvalidInput(
                f"the checkpoint {cp_path} belongs to another catalog ({old.catalog}); "
                "run without --resume to start over",
                checkpoint_catalog=old.catalog,
            )
        else:
            report.resumed_from_row = old.rows_done
            cp.counts = dict(old.counts)
            if old.failures_path == str(failures_path):
                resume_offset = old.failures_offset
            if old.completed:
                logger.info("%s was fully ingested already: nothing to resume", catalog)
                report.completed = True
                report.wall_seconds = time.perf_counter() - t_start
                return report
            logger.info("resuming %s after row %d", catalog, old.rows_done)
    start_row = report.resumed_from_row

    backend.ensure_index(index)
    if encoder is None:
        t0 = time.perf_counter()
        encoder = JointEncoder.load(settings, batch_size=batch_size, feature_cache=feature_cache)
        report.model_load_seconds = time.perf_counter() - t0
    report.model_version = encoder.model_version

    writer = FailureWriter(failures_path, resume_offset=resume_offset)
    cp.rows_done = start_row
    cp.failures_path = str(failures_path)
    cp.failures_offset = writer.offset
    save_checkpoint(cp, cp_path)

    total = count_rows(catalog, fmt)
    if total is not None:
        total = max(0, total - start_row)
        total = total if limit is None else min(total, limit)
    bar = tqdm(total=total, unit="item", desc=f"ingest {index}", disable=not progress)
    image_options = ImageOptions(
        images_dir=Path(images_dir) if images_dir else None,
        base_dir=catalog.resolve().parent,
        timeout_s=opts.http_timeout_s,
        retries=opts.http_retries,
        max_bytes=opts.max_image_bytes,
        max_pixels=opts.max_image_pixels,
        draft_size=opts.draft_size,
        url_allowed_hosts=tuple(settings.ingest.url_allowed_hosts),
    )
    # refresh every ``bulk_refresh_interval`` while indexing; restored on the way out
    try:
        with backend.refresh_interval(index, opts.bulk_refresh_interval):
            pipe = ProductStages(backend, encoder, index, image_options, opts, workers, report)
            jobs: queue.Queue[IndexJob | None] = queue.Queue(maxsize=max(1, opts.index_queue))
            indexer = Indexer(backend, jobs, report, writer, cp, cp_path, opts, bar)
            indexer.start()

            def put(job: IndexJob | None) -> None:
                t0 = time.perf_counter()
                while True:
                    if indexer.error is not None or not indexer.is_alive():
                        raise IndexerStopped()
                    try:
                        jobs.put(job, timeout=0.2)
                        break
                    except queue.Full:
                        continue
                report.add_wait("indexer", time.perf_counter() - t0)

            source = RowSource(
                iter_rows(catalog, fmt, mapping), start_row, limit, report, opts.taxonomy
            )
            pending: deque[Batch] = deque()
            try:
                for rows in batches(iter(source), batch_size):
                    pending.append(pipe.submit(rows))
                    if len(pending) > opts.prefetch:
                        put(pipe.encode(pending.popleft()))
                while pending:
                    put(pipe.encode(pending.popleft()))
                put(None)
                indexer.join()
                if indexer.error is not None:
                    raise IndexerStopped()
            except (IndexerStopped, ClusterUnavailable) as exc:
                err = indexer.error if isinstance(exc, IndexerStopped) else exc
                stop_indexer(jobs, indexer)
                _finish(pipe, bar, writer, report, t_start)
                if isinstance(err, ClusterUnavailable):
                    raise _aborted(report, err, cp.rows_done) from err
                raise err or RuntimeError("the indexing thread stopped") from None
            except BaseException:
                stop_indexer(jobs, indexer)
                _finish(pipe, bar, writer, report, t_start)
                raise
            _finish(pipe, bar, writer, report, t_start)
            report.unmapped_types = dict(source.unmapped.most_common())
            report.model_warning = _model_warning(settings, source.types)
            if source.unmapped:
                logger.warning(
                    "%d products of %d types have no outfit slot (left out of complete the look): %s;"
                    " give them one with [taxonomy] slots in the mapping file",
                    sum(source.unmapped.values()),
                    len(source.unmapped),
                    ", ".join(f"{k} ({v})" for k, v in source.unmapped.most_common(8)),
                )
    except ClusterUnavailable as exc:  # restoring the refresh interval after a clean run
        raise _aborted(report, exc, cp.rows_done) from exc
    if not source.rows_left:
        cp.completed = True
        save_checkpoint(cp, cp_path)
    if opts.refresh:
        try:
            backend.refresh(index)
        except ClusterUnavailable as exc:
            raise _aborted(report, exc, cp.rows_done) from exc
    if opts.force_merge_segments and cp.completed:
        t_merge = time.perf_counter()
        try:
            backend.force_merge(index, opts.force_merge_segments)
            backend.refresh(index)  # searchers open the merged segment(s)
        except ClusterUnavailable as exc:
            raise _aborted(report, exc, cp.rows_done) from exc
        logger.info(
            "%s merged to %d segment(s) in %.1fs",
            index,
            opts.force_merge_segments,
            time.perf_counter() - t_merge,
        )
    report.completed = True
    report.wall_seconds = time.perf_counter() - t_start
    if not report.reconciles:  # pragma: no cover - would be a bug, not a data problem
        logger.error("ingest counts do not reconcile: %s", json.dumps(report.to_json()))
    return report


def _model_warning(settings: Settings, types: Mapping[str, int]) -> str | None:
    """A warning when the model bundle was not fitted to this catalog (logged), else None."""
    if not types:
        return None
    message: str | None = fit_report(settings.models.bundle, types).get("warning")
    if message:
        logger.warning("%s", message)
    return message


def _finish(
    pipe: ProductStages,
    bar: Any,
    writer: FailureWriter,
    report: IngestReport,
    t_start: float,
) -> None:
    pipe.close()
    bar.close()
    writer.close()
    flush = getattr(pipe.encoder, "flush", None)
    if callable(flush):
        flush()
    secs, n = pipe.worker_time
    report.add_time("image", secs, n)
    report.wall_seconds = time.perf_counter() - t_start
    report.peak_rss_mb = peak_rss_mb()
