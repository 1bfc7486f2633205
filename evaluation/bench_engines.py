"""In-process query latency on OpenSearch and Elasticsearch, interleaved (one request of each
engine in turn, so both see the same machine load), on each engine's evaluation index of the
same catalog (``python -m evaluation report --max-items N`` builds them; nothing is ingested
here). Prints p50 / p99 per query type and engine, with the load average.

Types as in ``evaluation/tasks/latency.py`` (the default LTR blend ends every search): ``text``
(hybrid, query embedding included: each engine's service has its own empty query cache),
``text_bm25``, ``image_by_id`` (more like this item), ``image`` (photo bytes -> embed ->
category -> k-NN), ``compose`` (photo + "this but in <colour>").

    python -m evaluation.bench_engines --catalog ../shared/data/fashion-product-images/catalog.jsonl.gz \\
        --images ../shared/data/fashion-product-images/images --max-items 10000 --requests 100
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.cli import CommandParser, fail, setup_logging
from engine.engines import connect
from engine.errors import EngineError, NotFound
from engine.ltr.rerank import RerankBlend
from engine.search.inputs import image_from_bytes
from engine.search.quality import QualityRerank
from engine.search.service import SearchService
from engine.settings import Settings, load_settings
from evaluation.datasets import load_dataset
from evaluation.metrics import latency_summary
from evaluation.queries import attribute_queries, compose_queries
from evaluation.tasks.base import EvalContext
from evaluation.tasks.search import eval_index_name, load_model, model_version

logger = logging.getLogger(__name__)

ENGINES = ("opensearch", "elasticsearch")
TYPES = ("text", "text_bm25", "image_by_id", "image", "compose")


def _on(settings: Settings, engine: str) -> Settings:
    cluster = settings.cluster.model_copy(update={"engine": engine, "url": None})
    return settings.model_copy(update={"cluster": cluster})


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_engines", __doc__)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--requests", type=int, default=100, help="timed requests per type")
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        base = load_settings()
        ds = load_dataset(args.catalog, args.images, max_items=args.max_items)
        ctx = EvalContext(base, ds.products, args.images, out_dir=Path("."), dataset=ds)
        model = load_model(ctx)
        svcs: dict[str, SearchService] = {}
        for engine in ENGINES:
            s = _on(base, engine)
            backend = connect(s)
            index = eval_index_name(s, ds.products, model_version(s))
            if not backend.index_exists(index) or backend.count(index) != len(ds.products):
                raise NotFound(f"{engine}: no complete evaluation index {index}; run the report")
            svcs[engine] = SearchService.from_settings(
                s, backend, model, index=index, quality=QualityRerank(RerankBlend)
            )
        n = args.requests + args.warmup
        texts = [
            q.text for q in attribute_queries(ds.products, n=n, seed=args.seed, sources=ds.test)
        ]
        photos = [p.id for p in ds.test_photographed][:n]
        photo = {i: ds.image(i).read_bytes() for i in photos}
        cq = compose_queries(ds.products, n=n, seed=args.seed, sources=ds.test_photographed)
        api = base.api

        def calls(svc: SearchService) -> dict[str, list[Callable[[], Any]]]:
            return {
                "text": [lambda t=t: svc.text_search(t, size=10) for t in texts],
                "text_bm25": [lambda t=t: svc.text_search(t, size=10, mode="bm25") for t in texts],
                "image_by_id": [lambda i=i: svc.similar_to_item(i, size=10) for i in photos],
                "image": [
                    lambda i=i: svc.image_search(image_from_bytes(photo[i], api), size=10)
                    for i in photos
                ],
                "compose": [
                    lambda q=q: svc.compose_search(
                        image=image_from_bytes(photo[q.source_id], api), text=q.text, size=10
                    )
                    for q in cq
                    if q.source_id in photo
                ],
            }

        plan = {e: calls(svcs[e]) for e in ENGINES}
        ms: dict[tuple[str, str], list[float]] = {(e, t): [] for e in ENGINES for t in TYPES}
        for t in TYPES:
            for j in range(min(len(plan[e][t]) for e in ENGINES)):
                for e in ENGINES if j % 2 == 0 else ENGINES[::-1]:  # alternate who goes first
                    t0 = time.perf_counter()
                    plan[e][t][j]()
                    if j >= args.warmup:
                        ms[(e, t)].append((time.perf_counter() - t0) * 1000.0)
    except EngineError as exc:
        return fail(exc)
    load = os.getloadavg()
    print(f"{len(ds.products)} products; load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"{'type':<12} {'OpenSearch p50/p99 ms':>22} {'Elasticsearch p50/p99 ms':>26}   n")
    for t in TYPES:
        cells = []
        for e in ENGINES:
            s = latency_summary(ms[(e, t)]) if ms[(e, t)] else None
            cells.append(f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}" if s else "-")
        print(f"{t:<12} {cells[0]:>22} {cells[1]:>26}   {len(ms[(ENGINES[0], t)])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
