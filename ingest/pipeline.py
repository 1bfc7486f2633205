"""The product ingest pipeline: catalog rows -> documents in the products index.

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

import contextlib
import dataclasses
import json
import logging
import queue
import resource
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from tqdm import tqdm

from engine.backend import Backend
from engine.bundle import coverage, not_fitted_message, read_manifest
from engine.catalog import Product
from engine.catalog.readers import MappingLike, as_mapping
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.documents import (
    BUSINESS_FIELDS,
    PLAIN_FIELDS,
    VECTOR_FIELDS,
    business_fields,
    content_hash,
    joint_embeddings,
    plain_fields,
    product_to_document,
)
from engine.errors import (
    ClusterUnavailable,
    EngineError,
    IngestAborted,
    InvalidImage,
    InvalidInput,
)
from engine.settings import Settings
from ingest.checkpoint import Checkpoint, checkpoint_path, load_checkpoint, save_checkpoint
from ingest.encode import Encoder, JointEncoder, PreparedImage
from ingest.images import ImageFetcher, ImageOptions, decode, error_code, fetch_all, image_refs
from ingest.readers import (
    Format,
    Row,
    RowFailure,
    count_rows,
    detect_format,
    iter_rows,
    map_record,
    read_records,
)
from ingest.report import Failure, FailureWriter, IngestReport

logger = logging.getLogger(__name__)

# Source fields not needed when looking up existing documents.
_LOOKUP_EXCLUDES = [*VECTOR_FIELDS, "attr_prob"]


@dataclass(frozen=True)
class PipelineOptions:
    """Tuning knobs (the CLI exposes the common ones)."""

    prefetch: int = 2  # batches whose images are decoded ahead of the encoder
    index_queue: int = 2  # encoded batches waiting for the indexing thread
    attr_top_k: int = 3
    bulk_retries: int = 5
    bulk_backoff_s: float = 1.0
    refresh: bool = True  # refresh the index at the end so searches see the documents
    # While a run indexes, refresh every ``bulk_refresh_interval`` instead of the index's own
    # (1 s) interval: a slow stream of refreshes makes many tiny segments whose HNSW graphs are
    # rebuilt on every merge. The index's value is restored at the end; None keeps it as is.
    bulk_refresh_interval: str | None = "30s"
    http_timeout_s: float = 10.0
    http_retries: int = 2
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    draft_size: int | None = 448
    # outfit slots of documents: the mapping file's taxonomy (set by ingest_products)
    taxonomy: Taxonomy = field(default_factory=lambda: DEFAULT_TAXONOMY)


# ----------------------------------------------------------------------------- work items
@dataclass
class _Loaded:
    """One product's images after the worker stage."""

    refs: list[str]  # every image reference of the product (the image_urls field)
    sha1s: list[str]  # sha1 of every fetched image (the content hash covers them)
    chash: str
    used_refs: list[str] = field(default_factory=list)  # images that decoded, in order
    used_sha1s: list[str] = field(default_factory=list)
    images: list[PreparedImage] = field(default_factory=list)
    unchanged: bool = False
    dropped: int = 0


@dataclass
class _Item:
    row: Row
    product: Product
    text: str
    existing: dict[str, Any] | None
    future: Future[_Loaded | Failure]


@dataclass
class _Batch:
    rows: list[Row]
    failures: list[Failure]
    items: list[_Item]

    @property
    def rows_end(self) -> int:
        return self.rows[-1].seq + 1


@dataclass
class _IndexJob:
    actions: list[dict[str, Any]]
    meta: dict[str, tuple[int, str, bool]]  # doc id -> (line, "index" | "update", text-only)
    failures: list[Failure]
    rows: int
    rows_end: int
    skipped: int
    images: int
    dropped: int


class _IndexerStopped(Exception):
    """The indexing thread is gone (its error is on the thread)."""


def _row_failure(row: Row) -> Failure:
    f = row.failure or RowFailure("invalid_field", "invalid row")
    return Failure(f.item_id, row.line, "validate", f.reason, f.code)


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def _bulk_error(err: Mapping[str, Any]) -> tuple[str, int, str]:
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


def plain_update(
    product: Product,
    refs: Sequence[str],
    existing: Mapping[str, Any],
    taxonomy: Taxonomy = DEFAULT_TAXONOMY,
) -> dict[str, Any] | None:
    """The partial update bringing ``existing`` to the product's plain fields (None: same)."""
    new = plain_fields(product, refs, taxonomy)
    update: dict[str, Any] = {}
    for key in PLAIN_FIELDS:
        if key in new:
            if existing.get(key) != new[key]:
                update[key] = new[key]
        elif existing.get(key) is not None:
            update[key] = None
    return update or None


class _Indexer(threading.Thread):
    """Sends queued batches in order, then records failures and advances the checkpoint."""

    def __init__(
        self,
        backend: Backend,
        jobs: queue.Queue[_IndexJob | None],
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

    def _send(self, job: _IndexJob) -> None:
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
                doc_id, status, reason = _bulk_error(err)
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


class _ProductPipeline:
    """Worker-thread image stage and main-thread encode stage of one run."""

    def __init__(
        self,
        backend: Backend,
        encoder: Encoder,
        index: str,
        image_options: ImageOptions,
        options: PipelineOptions,
        workers: int,
        report: IngestReport,
    ) -> None:
        self.backend = backend
        self.encoder = encoder
        self.index = index
        self.image_options = image_options
        self.options = options
        self.workers = max(1, workers)
        self.report = report
        self.fetcher = ImageFetcher(image_options)
        self.pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="ingest-img")
        self._worker_seconds = 0.0
        self._worker_items = 0
        self._wlock = threading.Lock()

    # ------------------------------------------------------------------ worker threads
    def _load(
        self, product: Product, refs: list[str], text: str, old_hash: Any
    ) -> _Loaded | Failure:
        t0 = time.perf_counter()
        try:
            return self._load_images(product, refs, text, old_hash)
        except Exception as exc:  # noqa: BLE001 - one odd image must not stop the run
            logger.debug("item %s: image stage failed", product.id, exc_info=True)
            reason = f"{type(exc).__name__}: {exc}"
            return Failure(product.id, 0, "image", reason, "image_error")
        finally:
            with self._wlock:
                self._worker_seconds += time.perf_counter() - t0
                self._worker_items += 1

    def _load_images(
        self, product: Product, refs: list[str], text: str, old_hash: Any
    ) -> _Loaded | Failure:
        fetched, bad = fetch_all(self.fetcher, refs)
        if refs and (not fetched or fetched[0].ref != refs[0]):
            ref, exc = bad[0]
            return Failure(product.id, 0, "image", f"{ref}: {exc.message}", error_code(exc))
        for ref, exc in bad:
            logger.warning("item %s: dropping extra image %s: %s", product.id, ref, exc.message)
        sha1s = [f.sha1 for f in fetched]
        chash = content_hash(text, sha1s, self.encoder.model_version)
        loaded = _Loaded(refs=refs, sha1s=sha1s, chash=chash, dropped=len(bad))
        if old_hash == chash:
            loaded.unchanged = True
            return loaded
        for i, f in enumerate(fetched):
            try:
                prepared = self.encoder.prepare_image(decode(f.data, self.image_options))
            except InvalidImage as exc:
                if i == 0:
                    return Failure(
                        product.id, 0, "image", f"{f.ref}: {exc.message}", error_code(exc)
                    )
                logger.warning("item %s: dropping extra image %s: %s", product.id, f.ref, exc)
                loaded.dropped += 1
                continue
            loaded.images.append(prepared)
            loaded.used_refs.append(f.ref)
            loaded.used_sha1s.append(f.sha1)
        return loaded

    @property
    def worker_time(self) -> tuple[float, int]:
        with self._wlock:
            return self._worker_seconds / self.workers, self._worker_items

    # ------------------------------------------------------------------ main thread
    def submit(self, rows: list[Row]) -> _Batch:
        """Validate-failures, look up stored hashes, queue the image work of one batch."""
        failures = [_row_failure(r) for r in rows if r.product is None]
        products = [(r, r.product) for r in rows if r.product is not None]
        t0 = time.perf_counter()
        existing = self.backend.mget(
            self.index, [p.id for _, p in products], source_excludes=_LOOKUP_EXCLUDES
        )
        self.report.add_time("lookup", time.perf_counter() - t0, len(products))
        items: list[_Item] = []
        for r, p in products:
            text = self.encoder.text_for(p)
            refs = image_refs(p, self.image_options)
            old = existing.get(p.id)
            old_hash = old.get("content_hash") if old else None
            fut = self.pool.submit(self._load, p, refs, text, old_hash)
            items.append(_Item(r, p, text, old, fut))
        return _Batch(rows, failures, items)

    def encode(self, batch: _Batch) -> _IndexJob:
        """Wait for a batch's images, encode what changed, build the bulk actions."""
        failures = list(batch.failures)
        actions: list[dict[str, Any]] = []
        meta: dict[str, tuple[int, str, bool]] = {}
        skipped = 0
        todo: list[tuple[_Item, _Loaded]] = []
        t0 = time.perf_counter()
        results = [(it, it.future.result()) for it in batch.items]
        self.report.add_wait("images", time.perf_counter() - t0)
        for it, res in results:
            pid = it.product.id
            if isinstance(res, Failure):
                failures.append(Failure(pid, it.row.line, res.stage, res.reason, res.code))
            elif res.unchanged:
                update = plain_update(
                    it.product, res.refs, it.existing or {}, self.options.taxonomy
                )
                if update is None:
                    skipped += 1
                else:
                    actions.append(
                        {"_op_type": "update", "_index": self.index, "_id": pid, "doc": update}
                    )
                    meta[pid] = (it.row.line, "update", False)
            else:
                todo.append((it, res))
        for (it, ld), doc in zip(todo, self._documents(todo), strict=True):
            pid = it.product.id
            actions.append({"_op_type": "index", "_index": self.index, "_id": pid, "_source": doc})
            meta[pid] = (it.row.line, "index", not ld.images)
        return _IndexJob(
            actions=actions,
            meta=meta,
            failures=failures,
            rows=len(batch.rows),
            rows_end=batch.rows_end,
            skipped=skipped,
            images=sum(len(ld.images) for _, ld in todo),
            dropped=sum(ld.dropped for _, ld in todo),
        )

    def _documents(self, todo: list[tuple[_Item, _Loaded]]) -> list[dict[str, Any]]:
        if not todo:
            return []
        enc = self.encoder
        flat: list[PreparedImage] = []
        owner: list[int] = []
        for i, (_, ld) in enumerate(todo):
            flat.extend(ld.images)
            owner.extend([i] * len(ld.images))
        t0 = time.perf_counter()
        img_emb = enc.embed_prepared(flat) if flat else np.zeros((0, enc.dim), np.float32)
        t1 = time.perf_counter()
        txt_emb = enc.embed_texts([it.text for it, _ in todo])
        t2 = time.perf_counter()
        n = len(todo)
        primary = np.zeros((n, enc.dim), dtype=np.float32)
        has_image = np.zeros(n, dtype=bool)
        per_item: list[list[np.ndarray]] = [[] for _ in range(n)]
        for row, i in enumerate(owner):
            if not has_image[i]:
                primary[i] = img_emb[row]
                has_image[i] = True
            per_item[i].append(img_emb[row])
        joint = joint_embeddings(txt_emb, primary, has_image)
        attrs = enc.attributes(joint, self.options.attr_top_k)
        codes = enc.codes(joint)
        t3 = time.perf_counter()
        self.report.add_time("encode_image", t1 - t0, len(flat))
        self.report.add_time("encode_text", t2 - t1, n)
        self.report.add_time("attributes", t3 - t2, n)
        return [
            product_to_document(
                it.product,
                text_embedding=txt_emb[i],
                image_embeddings=per_item[i],
                image_urls=ld.used_refs,
                image_sha1s=ld.used_sha1s,
                all_image_urls=ld.refs,
                joint_embedding=joint[i],
                attribute_probabilities=attrs[i] if attrs else None,
                binary_code=None if codes is None else codes[i],
                content_hash=ld.chash,
                model_version=enc.model_version,
                attr_top_k=self.options.attr_top_k,
                taxonomy=self.options.taxonomy,
            )
            for i, (it, ld) in enumerate(todo)
        ]

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
        self.fetcher.close()


class _RowSource:
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


def _batches(rows: Iterator[Row], size: int) -> Iterator[list[Row]]:
    batch: list[Row] = []
    for r in rows:
        batch.append(r)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def default_failures_path(index: str, state_dir: Path | None = None) -> Path:
    return checkpoint_path(index, state_dir).with_name(f"{index}.failures.jsonl")


def _aborted(report: IngestReport, err: ClusterUnavailable, rows_done: int) -> IngestAborted:
    report.completed = False
    report.aborted_reason = err.message
    exc = IngestAborted(
        f"ingest stopped: {err.message}. Rows before {rows_done} are safely indexed (checkpoint "
        f"{report.checkpoint_path}); re-run the same command with --resume to continue",
        rows_done=rows_done,
        checkpoint=report.checkpoint_path,
    )
    exc.report = report  # type: ignore[attr-defined]
    return exc


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
    backend = backend or Backend.from_settings(settings)
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
    restore_refresh = _slow_refresh(backend, index, opts.bulk_refresh_interval)
    pipe = _ProductPipeline(backend, encoder, index, image_options, opts, workers, report)
    jobs: queue.Queue[_IndexJob | None] = queue.Queue(maxsize=max(1, opts.index_queue))
    indexer = _Indexer(backend, jobs, report, writer, cp, cp_path, opts, bar)
    indexer.start()

    def put(job: _IndexJob | None) -> None:
        t0 = time.perf_counter()
        while True:
            if indexer.error is not None or not indexer.is_alive():
                raise _IndexerStopped()
            try:
                jobs.put(job, timeout=0.2)
                break
            except queue.Full:
                continue
        report.add_wait("indexer", time.perf_counter() - t0)

    source = _RowSource(iter_rows(catalog, fmt, mapping), start_row, limit, report, opts.taxonomy)
    pending: deque[_Batch] = deque()
    try:
        for rows in _batches(iter(source), batch_size):
            pending.append(pipe.submit(rows))
            if len(pending) > opts.prefetch:
                put(pipe.encode(pending.popleft()))
        while pending:
            put(pipe.encode(pending.popleft()))
        put(None)
        indexer.join()
        if indexer.error is not None:
            raise _IndexerStopped()
    except (_IndexerStopped, ClusterUnavailable) as exc:
        err = indexer.error if isinstance(exc, _IndexerStopped) else exc
        _stop_indexer(jobs, indexer)
        _finish(pipe, bar, writer, report, t_start)
        with contextlib.suppress(EngineError):
            restore_refresh()
        if isinstance(err, ClusterUnavailable):
            raise _aborted(report, err, cp.rows_done) from err
        raise err or RuntimeError("the indexing thread stopped") from None
    except BaseException:
        _stop_indexer(jobs, indexer)
        _finish(pipe, bar, writer, report, t_start)
        with contextlib.suppress(EngineError):
            restore_refresh()
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
    try:
        restore_refresh()
    except ClusterUnavailable as exc:
        raise _aborted(report, exc, cp.rows_done) from exc
    if not source.rows_left:
        cp.completed = True
        save_checkpoint(cp, cp_path)
    if opts.refresh:
        try:
            backend.refresh(index)
        except ClusterUnavailable as exc:
            raise _aborted(report, exc, cp.rows_done) from exc
    report.completed = True
    report.wall_seconds = time.perf_counter() - t_start
    if not report.reconciles:  # pragma: no cover - would be a bug, not a data problem
        logger.error("ingest counts do not reconcile: %s", json.dumps(report.to_json()))
    return report


def _model_warning(settings: Settings, types: Mapping[str, int]) -> str | None:
    """A warning when the model bundle was not fitted to this catalog (logged), else None."""
    if not types:
        return None
    try:
        manifest = read_manifest(settings.models.bundle)
    except EngineError as exc:
        return exc.message
    if manifest is None:
        return None
    cov = coverage(manifest.label_spaces.get("article_type"), types)
    if cov.fitted:
        return None
    message = not_fitted_message(cov, settings.models.bundle)
    logger.warning("%s", message)
    return message


def _slow_refresh(backend: Backend, index: str, interval: str | None) -> Callable[[], None]:
    """Set the index's refresh interval to ``interval`` for the run; returns the undo.

    A value equal to ``interval`` found on the index is taken as left behind by an interrupted
    run, and is reset to the cluster default (1 s) by the undo."""
    if interval is None:
        return lambda: None
    current = (
        backend.get_settings(index)
        .get(index, {})
        .get("settings", {})
        .get("index", {})
        .get("refresh_interval")
    )
    if current == "-1":  # the operator switched refreshes off: leave it so
        return lambda: None
    backend.put_settings(index, {"index": {"refresh_interval": interval}})
    original = None if current in (None, interval) else current

    def undo() -> None:
        backend.put_settings(index, {"index": {"refresh_interval": original}})

    return undo


def _finish(
    pipe: _ProductPipeline,
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
    report.peak_rss_mb = _peak_rss_mb()


def _stop_indexer(jobs: queue.Queue[_IndexJob | None], indexer: _Indexer) -> None:
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


# ----------------------------------------------------------------------------- updates
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
    t_start = time.perf_counter()
    catalog = Path(catalog)
    index = index or settings.cluster.products_index
    backend = backend or Backend.from_settings(settings)
    report = IngestReport(
        command="update",
        index=index,
        catalog=str(catalog),
        failures_path=str(failures_path) if failures_path else None,
    )
    writer = FailureWriter(failures_path)
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
            index, [rid for _, rid, _ in updates], source_excludes=_LOOKUP_EXCLUDES
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
                doc_id, status, reason = _bulk_error(err)
                code = "not_found" if status == 404 else "update_rejected"
                failures.append(Failure(doc_id, meta.get(doc_id, 0), "update", reason, code))
        report.read += len(batch)
        report.indexed += ok
        report.skipped_unchanged += skipped
        report.add_failures(failures)
        writer.write(failures)
        bar.update(len(batch))

    try:
        batch: list[tuple[int, str | None, dict[str, Any] | RowFailure]] = []
        for n, row in enumerate(_business_rows(catalog, fmt, mapping)):
            if limit is not None and n >= limit:
                break
            batch.append(row)
            if len(batch) >= batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        if refresh:
            backend.refresh(index)
    except ClusterUnavailable as exc:
        report.aborted_reason = exc.message
        report.wall_seconds = time.perf_counter() - t_start
        err = IngestAborted(
            f"update stopped: {exc.message}; updates are idempotent, re-run the command",
            updated=report.indexed,
        )
        err.report = report  # type: ignore[attr-defined]
        raise err from exc
    finally:
        bar.close()
        writer.close()
    report.completed = True
    report.wall_seconds = time.perf_counter() - t_start
    return report


# ----------------------------------------------------------------------------- deletes
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
    t_start = time.perf_counter()
    index = index or settings.cluster.products_index
    backend = backend or Backend.from_settings(settings)
    report = IngestReport(
        command="delete",
        index=index,
        catalog=str(ids_file),
        failures_path=str(failures_path) if failures_path else None,
    )
    writer = FailureWriter(failures_path)

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
            doc_id, status, reason = _bulk_error(err)
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
    try:
        batch: list[tuple[int, str]] = []
        for line, rid in read_ids(Path(ids_file)):
            if rid and rid in seen:
                dup.append(Failure(rid, line, "validate", "duplicate id", "duplicate_id"))
                report.read += 1
                continue
            seen.add(rid)
            batch.append((line, rid))
            if len(batch) >= batch_size:
                flush(batch)
                batch = []
        if batch:
            flush(batch)
        report.add_failures(dup)
        writer.write(dup)
        if refresh:
            backend.refresh(index)
    except ClusterUnavailable as exc:
        report.aborted_reason = exc.message
        err = IngestAborted(f"delete stopped: {exc.message}; re-run the command")
        err.report = report  # type: ignore[attr-defined]
        raise err from exc
    finally:
        writer.close()
    report.completed = True
    report.wall_seconds = time.perf_counter() - t_start
    return report
