"""Query latency (in-process, one request at a time) on the evaluation index.

Each query type is timed end to end inside the service: ``text`` = hybrid text search (query
embedding included, the query-vector cache starts empty and queries are distinct), ``image`` =
JPEG bytes of a test photo -> decode -> embed -> category -> k-NN, ``compose`` = photo bytes +
"this but in <colour>", ``complete_the_look`` = :class:`engine.looks.service.LookService` for
a test item id (null with the reason when the looks service cannot run). Searches end with the
quality re-rank at the default LTR blend, as the API serves them on a never-tuned cluster. Extras:
``image_by_id`` (more like this catalog item, stored vector), ``text_bm25``.

Every type gets ``p50_ms``, ``p99_ms``, ``mean_ms``, ``max_ms`` and ``n`` after ``WARMUP``
untimed calls. The numbers depend on the machine and on what else runs on it (the load average
is reported in the notes); HTTP overhead is measured by ``evaluation/load_search.py``.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

from engine.backend import Backend
from engine.engines import connect
from engine.looks.slots import look_slot
from engine.ltr.rerank import RerankBlend
from engine.search.inputs import image_from_bytes
from engine.search.quality import QualityRerank
from engine.search.service import SearchService
from evaluation.metrics import latency_summary, timed_ms
from evaluation.queries import attribute_queries, compose_queries
from evaluation.tasks.base import EvalContext, TaskResult
from evaluation.tasks.search import eval_index, load_model

logger = logging.getLogger(__name__)

NAME = "latency"
WARMUP = 5


def _cycle(items: Sequence[Any], n: int) -> list[Any]:
    return [items[i % len(items)] for i in range(n)] if items else []


def _measure(
    calls: Sequence[Callable[[], object]],
    warm: Sequence[Callable[[], object]] | None = None,
    *,
    keep: list[float] | None = None,
) -> dict[str, float | int] | None:
    """Latency summary of ``calls`` after the ``warm`` calls (default: the first few);
    the samples (ms) are appended to ``keep`` when given."""
    if not calls:
        return None
    for fn in calls[:WARMUP] if warm is None else warm:
        fn()
    samples = [timed_ms(fn) for fn in calls]
    if keep is not None:
        keep.extend(samples)
    s = latency_summary(samples)
    return {k: (int(v) if k == "n" else round(float(v), 3)) for k, v in s.items()}


def _looks_calls(
    ctx: EvalContext, backend: Backend, index: str, model: Any, ids: Sequence[str]
) -> tuple[list[Callable[[], object]], str | None]:
    """complete-the-look calls, or a reason why the looks service cannot run."""
    if not ids:
        return [], "no test item belongs to an outfit slot"
    try:
        from engine.looks.compat import CompatModel
        from engine.looks.service import CompleteRequest, LookService
    except ImportError as exc:
        return [], f"looks service not available: {exc}"
    from engine.errors import EngineError, ModelUnavailable

    try:
        compat: Any = CompatModel.load(None, device="cpu")
    except ModelUnavailable:
        compat = None
    svc = LookService(
        backend,
        products_index=index,
        looks_index=ctx.settings.cluster.looks_index,
        model=compat,
        joint_loader=lambda: model,
    )
    try:
        svc.complete(CompleteRequest(item_id=ids[0], size=5))
    except EngineError as exc:
        return [], f"complete-the-look failed: {exc.message}"

    def call(item_id: str) -> Callable[[], object]:
        return lambda: svc.complete(CompleteRequest(item_id=item_id, size=5))

    return [call(i) for i in ids], None


def run(ctx: EvalContext) -> TaskResult:
    t0 = time.perf_counter()
    ds = ctx.get_dataset()
    model = load_model(ctx)
    index = eval_index(ctx, model)
    backend = connect(ctx.settings)
    # as the API serves a never-tuned cluster: the default LTR blend ends every search
    svc = SearchService.from_settings(
        ctx.settings, backend, model, index=index, quality=QualityRerank(RerankBlend)
    )
    api = ctx.settings.api
    n = ctx.capped(200)
    notes: list[str] = []

    texts = [q.text for q in attribute_queries(ds.products, n=n, seed=ctx.seed, sources=ds.test)]
    photos = [p.id for p in ds.test_photographed][: max(n, 1)]
    photo_bytes = {i: ds.image(i).read_bytes() for i in photos}
    cq = compose_queries(ds.products, n=n, seed=ctx.seed, sources=ds.test_photographed)

    def text_call(q: str) -> Callable[[], object]:
        return lambda: svc.text_search(q, size=10)

    def bm25_call(q: str) -> Callable[[], object]:
        return lambda: svc.text_search(q, size=10, mode="bm25")

    def image_call(i: str) -> Callable[[], object]:
        return lambda: svc.image_search(image_from_bytes(photo_bytes[i], api), size=10)

    def by_id_call(i: str) -> Callable[[], object]:
        return lambda: svc.similar_to_item(i, size=10)

    def compose_call(i: str, text: str) -> Callable[[], object]:
        return lambda: svc.compose_search(
            image=image_from_bytes(photo_bytes[i], api), text=text, size=10
        )

    samples: dict[str, list[float]] = {
        k: [] for k in ("text", "image", "compose", "text_bm25", "image_by_id", "complete_the_look")
    }
    metrics: dict[str, Any] = {
        # warm-up queries differ from the timed ones: every timed query embeds its text
        "text": _measure(
            [text_call(q) for q in texts],
            [text_call(f"warm up {i}") for i in range(WARMUP)],
            keep=samples["text"],
        ),
        "image": _measure([image_call(i) for i in _cycle(photos, n)], keep=samples["image"]),
        "compose": _measure(
            [
                compose_call(q.source_id, q.text)
                for q in _cycle(cq, n)
                if q.source_id in photo_bytes
            ],
            keep=samples["compose"],
        ),
        "text_bm25": _measure([bm25_call(q) for q in texts], keep=samples["text_bm25"]),
        "image_by_id": _measure(
            [by_id_call(i) for i in _cycle(photos, n)], keep=samples["image_by_id"]
        ),
    }
    outfit_items = [p.id for p in ds.test if look_slot(p) is not None]
    looks, reason = _looks_calls(ctx, backend, index, model, _cycle(outfit_items, n))
    metrics["complete_the_look"] = (
        _measure(looks, keep=samples["complete_the_look"]) if looks else None
    )
    plots = []
    try:
        from evaluation.plots import latency_histograms

        plots.append(
            latency_histograms(
                samples, ctx.plot_path("latency_histograms"), title="In-process latency"
            )
        )
    except Exception as exc:  # noqa: BLE001 - a missing plot must not fail the metrics
        logger.warning("could not draw the latency plot: %s", exc)
    if reason:
        notes.append(f"complete_the_look: {reason}")
    load = os.getloadavg() if hasattr(os, "getloadavg") else None
    notes.append(
        f"in-process, sequential, {os.cpu_count()} CPUs, load average {load}; index {index} "
        f"({backend.count(index)} items); {len(texts)} distinct text queries (cold "
        "query-vector cache)"
    )
    if all(v is None for v in metrics.values()):
        return TaskResult(NAME, None, reason="no queries could be generated")
    return TaskResult(NAME, metrics, notes=notes, plots=plots, seconds=time.perf_counter() - t0)
