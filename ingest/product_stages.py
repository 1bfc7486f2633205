"""The product pipeline's work stages: images fetched, decoded and cropped on worker threads,
then encoded in batches on the main thread into bulk actions (:class:`ProductStages`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from engine.backend import Backend
from engine.catalog import Product
from engine.catalog.taxonomy import DEFAULT_TAXONOMY, Taxonomy
from engine.documents import (
    PLAIN_FIELDS,
    content_hash,
    joint_embeddings,
    plain_fields,
    product_to_document,
)
from engine.errors import InvalidImage
from ingest.encode import Encoder, PreparedImage
from ingest.images import (
    ImageFetcher,
    ImageOptions,
    decode,
    error_code,
    fetch_all,
    image_refs,
    located,
)
from ingest.indexer import IndexJob
from ingest.readers import Row, RowFailure
from ingest.report import Failure, IngestReport
from ingest.runner import LOOKUP_EXCLUDES

logger = logging.getLogger(__name__)


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
    # after a run that reached the end of the catalog, merge the index down to this many
    # segments (None: leave merging to the node); one segment made 44k-product text queries
    # 19.8 -> 14.4 ms in-process (docs/PERFORMANCE.md)
    force_merge_segments: int | None = None
    http_timeout_s: float = 10.0
    http_retries: int = 2
    max_image_bytes: int = 10 * 1024 * 1024
    max_image_pixels: int = 40_000_000
    draft_size: int | None = 448
    # outfit slots of documents: the mapping file's taxonomy (set by ingest_products)
    taxonomy: Taxonomy = field(default_factory=lambda: DEFAULT_TAXONOMY)


# ----------------------------------------------------------------------------- work items
@dataclass
class Loaded:
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
class Item:
    row: Row
    product: Product
    text: str
    existing: dict[str, Any] | None
    future: Future[Loaded | Failure]


@dataclass
class Batch:
    rows: list[Row]
    failures: list[Failure]
    items: list[Item]

    @property
    def rows_end(self) -> int:
        return self.rows[-1].seq + 1


def row_failure(row: Row) -> Failure:
    f = row.failure or RowFailure("invalid_field", "invalid row")
    return Failure(f.item_id, row.line, "validate", f.reason, f.code)


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


class ProductStages:
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
    ) -> Loaded | Failure:
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
    ) -> Loaded | Failure:
        fetched, bad = fetch_all(self.fetcher, refs)
        if refs and (not fetched or fetched[0].ref != refs[0]):
            ref, exc = bad[0]
            return Failure(product.id, 0, "image", f"{ref}: {exc.message}", error_code(exc))
        for ref, exc in bad:
            logger.warning("item %s: dropping extra image %s: %s", product.id, ref, exc.message)
        sha1s = [f.sha1 for f in fetched]
        chash = content_hash(text, sha1s, self.encoder.model_version)
        loaded = Loaded(refs=refs, sha1s=sha1s, chash=chash, dropped=len(bad))
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
    def submit(self, rows: list[Row]) -> Batch:
        """Validate-failures, look up stored hashes, queue the image work of one batch."""
        failures = [row_failure(r) for r in rows if r.product is None]
        products = [(r, r.product) for r in rows if r.product is not None]
        t0 = time.perf_counter()
        existing = self.backend.mget(
            self.index, [p.id for _, p in products], source_excludes=LOOKUP_EXCLUDES
        )
        self.report.add_time("lookup", time.perf_counter() - t0, len(products))
        items: list[Item] = []
        for r, p in products:
            text = self.encoder.text_for(p)
            refs = located(image_refs(p, self.image_options), self.image_options)
            old = existing.get(p.id)
            old_hash = old.get("content_hash") if old else None
            fut = self.pool.submit(self._load, p, refs, text, old_hash)
            items.append(Item(r, p, text, old, fut))
        return Batch(rows, failures, items)

    def encode(self, batch: Batch) -> IndexJob:
        """Wait for a batch's images, encode what changed, build the bulk actions."""
        failures = list(batch.failures)
        actions: list[dict[str, Any]] = []
        meta: dict[str, tuple[int, str, bool]] = {}
        skipped = 0
        todo: list[tuple[Item, Loaded]] = []
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
        return IndexJob(
            actions=actions,
            meta=meta,
            failures=failures,
            rows=len(batch.rows),
            rows_end=batch.rows_end,
            skipped=skipped,
            images=sum(len(ld.images) for _, ld in todo),
            dropped=sum(ld.dropped for _, ld in todo),
        )

    def _documents(self, todo: list[tuple[Item, Loaded]]) -> list[dict[str, Any]]:
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
