"""Hybrid text search on Elasticsearch, both ways, on validation queries: our min-max fusion
(``OUTFIT_CLUSTER__ES_HYBRID=fusion``, the normalisation processor's semantics) vs Elasticsearch's
native boosted ``query`` + ``knn`` in one request (``native``), at the installed weights and at a
few re-tuned ones. Prints nDCG@10 and in-process latency (p50 / p99, the two interleaved).

The index is the evaluation index of ``python -m evaluation report`` (same catalog, same
``--max-items``: reused when complete, ingested otherwise). Validation queries: attribute
queries (:func:`evaluation.queries.attribute_queries`) whose sources are TRAIN-split items
(``--sources train``, default; the report's queries come from the test split) with their own
seed.

    OUTFIT_CLUSTER__ENGINE=elasticsearch python -m evaluation.es_hybrid \\
        --catalog ../shared/data/fashion-product-images/catalog.jsonl.gz \\
        --images ../shared/data/fashion-product-images/images --max-items 10000
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from engine.cli import CommandParser, fail, setup_logging
from engine.engines import connect, with_engine
from engine.errors import EngineError, InvalidInput
from engine.search.service import SearchService
from engine.settings import Settings, load_settings
from evaluation.datasets import load_dataset
from evaluation.metrics import latency_summary, mean, ndcg_at_k
from evaluation.queries import attribute_queries
from evaluation.tasks.base import EvalContext
from evaluation.tasks.search import ensure_catalog_index, load_model

logger = logging.getLogger(__name__)

K = 10
# (bm25, vector): the shipped weights first; native re-tunings shrink the unbounded BM25 part
NATIVE_WEIGHTS = ((0.4, 0.6), (0.1, 0.9), (0.03, 0.97), (0.01, 0.99))


def _with_hybrid(settings: Settings, mode: str) -> Settings:
    cluster = settings.cluster.model_copy(update={"es_hybrid": mode})
    return settings.model_copy(update={"cluster": cluster})


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.es_hybrid", __doc__)
    parser.add_argument("--catalog", type=Path, required=True)
    parser.add_argument("--images", type=Path, required=True)
    parser.add_argument("--max-items", type=int, default=None)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--sources", choices=("train", "test"), default="train")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    setup_logging(args)
    try:
        settings = with_engine(load_settings())
        if settings.cluster.engine != "elasticsearch":
            raise InvalidInput("set OUTFIT_CLUSTER__ENGINE=elasticsearch (or an ES cluster URL)")
        ds = load_dataset(args.catalog, args.images, max_items=args.max_items)
        ctx = EvalContext(settings, ds.products, args.images, out_dir=Path("."), dataset=ds)
        model = load_model(ctx)
        index = ensure_catalog_index(settings, ds.products, args.images, model)
        sources = ds.train if args.sources == "train" else ds.test
        queries = attribute_queries(ds.products, n=args.queries, seed=args.seed, sources=sources)
        svcs = {
            mode: SearchService.from_settings(
                settings, connect(_with_hybrid(settings, mode)), model, index=index
            )
            for mode in ("fusion", "native")
        }
        installed = svcs["fusion"].installed_weights()
        runs = [("fusion", installed)] + [("native", w) for w in NATIVE_WEIGHTS]
        ndcg: dict[int, list[float]] = {i: [] for i in range(len(runs))}
        ms: dict[int, list[float]] = {i: [] for i in range(len(runs))}
        for q in queries:  # interleaved: every run sees the same machine load
            for i, (mode, w) in enumerate(runs):
                t0 = time.perf_counter()
                res = svcs[mode].text_search(q.text, size=K, weights=w)
                ms[i].append((time.perf_counter() - t0) * 1000.0)
                hits = [h.id for h in res.hits]
                ndcg[i].append(ndcg_at_k(hits, q.relevance, K))
    except EngineError as exc:
        return fail(exc)
    load = os.getloadavg()
    print(
        f"index {index}; {len(queries)} {args.sources}-split attribute queries (seed {args.seed})"
    )
    print(f"load average {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; installed weights {installed}")
    print(f"{'combination':<34} {'nDCG@10':>8} {'p50 ms':>8} {'p99 ms':>8}")
    for i, (mode, w) in enumerate(runs):
        lat = latency_summary(ms[i])
        label = f"{mode} (bm25, vector) = {w}"
        print(f"{label:<34} {mean(ndcg[i]):>8.4f} {lat['p50_ms']:>8.1f} {lat['p99_ms']:>8.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
