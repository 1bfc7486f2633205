"""Latency added by LTR re-ranking: ``python -m evaluation.bench_rerank [--candidates 60]``.

Times :func:`engine.ltr.rerank.rerank` (feature extraction + GBDT+LR scoring + blend + sort) on
candidate lists built from real catalog rows (the bundled sample by default), each with the
query signals a hybrid search would pass. Prints p50/p99 in milliseconds as JSON.
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

from engine.catalog import load_catalog
from engine.cli import CommandParser, setup_logging
from engine.ltr.features import Candidate, doc_from_product
from engine.ltr.rerank import RerankBlend, load_model, rerank
from engine.settings import load_settings
from evaluation.metrics import latency_summary, timed_ms


def candidate_lists(catalog: Path, n_lists: int, size: int, seed: int = 0) -> list[list[Candidate]]:
    products = load_catalog(catalog)
    if not products:
        raise SystemExit(f"no products in {catalog}")
    rng = random.Random(seed)
    out = []
    for _ in range(n_lists):
        chosen = [rng.choice(products) for _ in range(size)]
        scores = sorted((rng.uniform(0.0, 1.0) for _ in chosen), reverse=True)
        out.append(
            [
                Candidate(
                    p.id,
                    s,
                    doc_from_product(p),
                    {
                        "bm25": 10.0 * s,
                        "text_sim": rng.uniform(0.5, 1.0),
                        "image_sim": rng.uniform(0.5, 1.0),
                        "category_conf": rng.uniform(0.0, 1.0),
                    },
                )
                for p, s in zip(chosen, scores, strict=True)
            ]
        )
    return out


def main(argv: list[str] | None = None) -> int:
    parser = CommandParser("python -m evaluation.bench_rerank", __doc__)
    parser.add_argument("--catalog", type=Path, default=None, help="default: the sample")
    parser.add_argument("--model", type=Path, default=None, help="default: the shipped model")
    parser.add_argument("--candidates", type=int, default=60)
    parser.add_argument("--requests", type=int, default=500)
    parser.add_argument("--warmup", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    setup_logging(args)
    catalog = args.catalog or load_settings().sample_dir / "catalog.jsonl"
    model = load_model(args.model)
    blend = RerankBlend(top_n=args.candidates)
    lists = candidate_lists(catalog, args.requests + args.warmup, args.candidates, args.seed)
    now = time.time()
    for cands in lists[: args.warmup]:
        rerank(cands, model, blend=blend, reference_time=now)
    samples = [
        timed_ms(lambda c=cands: rerank(c, model, blend=blend, reference_time=now))  # type: ignore[misc]
        for cands in lists[args.warmup :]
    ]
    summary = latency_summary(samples)
    print(
        json.dumps(
            {
                "what": f"rerank() of {args.candidates} candidates (features + GBDT+LR + blend)",
                "model": model.version,
                "n_trees": len(model.trees),
                "catalog": str(catalog),
                **{k: round(v, 3) if isinstance(v, float) else v for k, v in summary.items()},
            },
            indent=2,
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
