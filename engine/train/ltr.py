"""Train the GBDT+LR re-ranker: ``python -m engine.train.ltr [options]``.

Data (one of):
    * default: SIMULATED clicks over a catalog (``engine.train.datagen.clicks``; nothing real);
    * ``--clicks FILE``: a click log (JSONL, docs/LTR.md); products looked up in ``--catalog``;
    * ``--judgments FILE``: a judgment list (JSONL, graded labels).

Queries are split by a fixed hash of ``query_id`` (``engine.train.datagen.clicks.is_heldout``): the
model is fit on the rest, and the JSON report gives nDCG@10 of the original order and after
re-ranking on the held-out queries (when they have graded labels: simulated truth, or the
judgments; for a click log pass ``--eval-judgments``).

Examples::

    python -m engine.train.ltr --seed 0 --report .cache/ltr/report.json
    python -m engine.train.ltr --install-default          # refresh engine/ltr/weights/
    python -m engine.train.ltr --clicks clicks.jsonl --catalog catalog.jsonl.gz --out m.json
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from engine.catalog import Product, load_catalog
from engine.cli import CommandParser, fail, setup_logging
from engine.errors import EngineError, InvalidInput
from engine.ltr.features import FEATURES, MISSING_SUFFIX, doc_from_product
from engine.ltr.rerank import DEFAULT_MODEL_PATH, RerankBlend
from engine.settings import PROJECT_ROOT, load_settings
from engine.train import ltr_data
from engine.train.datagen import clicks as sim
from engine.train.ltr_model import TrainParams, train_model

logger = logging.getLogger(__name__)

SWEEP = (0.0, 0.25, 0.5, 0.75, 1.0)
DEFAULT_OUT = PROJECT_ROOT / ".cache" / "ltr" / "model.json"


def _parser() -> argparse.ArgumentParser:
    p = CommandParser("python -m engine.train.ltr", __doc__)
    p.add_argument("--catalog", type=Path, default=None, help="default: the bundled sample")
    src = p.add_mutually_exclusive_group()
    src.add_argument("--clicks", type=Path, default=None, help="click log JSONL")
    src.add_argument("--judgments", type=Path, default=None, help="judgment list JSONL")
    p.add_argument("--eval-judgments", type=Path, default=None, help="labels for --clicks")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--queries", type=int, default=None, help="simulated queries (default all)")
    p.add_argument("--sessions", type=int, default=30, help="simulated sessions per query")
    p.add_argument("--top-n", type=int, default=60, help="candidates per simulated query")
    p.add_argument(
        "--no-skip-above",
        action="store_true",
        help="count every impression as examined (default: skip-above heuristic)",
    )
    p.add_argument(
        "--exclude-features",
        default=None,
        help="comma-separated value features to leave out (default with simulated data: bm25, "
        "whose offline scale differs from the cluster's BM25, and recency_days, which the "
        "simulated shopper ignores and whose 'now' differs between simulation and serving)",
    )
    p.add_argument("--n-estimators", type=int, default=TrainParams.n_estimators)
    p.add_argument("--max-depth", type=int, default=TrainParams.max_depth)
    p.add_argument("--learning-rate", type=float, default=TrainParams.learning_rate)
    p.add_argument("--version", default=None, help="model version (default: from the time)")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="model .json (+ .meta.json)")
    p.add_argument(
        "--install-default",
        action="store_true",
        help=f"write the model as the shipped default ({DEFAULT_MODEL_PATH.name})",
    )
    p.add_argument("--report", type=Path, default=None, help="write the JSON metrics report")
    p.add_argument("--write-simulated", type=Path, default=None, help="dump simulated JSONL")
    p.add_argument("--export-ltr", type=Path, default=None, help="write LTR plugin JSON here")
    return p


def _feature_names(exclude: str | None, simulated: bool) -> list[str]:
    names = [n.strip() for n in (exclude or "").split(",") if n.strip()]
    if exclude is None and simulated:
        names = ["bm25", "recency_days"]
    bad = [n for n in names if n not in FEATURES]
    if bad:
        raise InvalidInput(f"unknown features {bad}; known: {', '.join(FEATURES)}")
    drop = set(names) | {n + MISSING_SUFFIX for n in names}
    return [f for f in FEATURES if f not in drop]


def _shown(path: Path) -> str:
    """A path relative to the project when inside it (reproducible metadata)."""
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def _docs(products: Sequence[Product]) -> dict[str, dict[str, Any]]:
    return {p.id: doc_from_product(p) for p in products}


def _split(lists: Sequence[ltr_data.RankedList]) -> tuple[list[Any], list[Any]]:
    train = [rl for rl in lists if not sim.is_heldout(rl.query_id)]
    held = [rl for rl in lists if sim.is_heldout(rl.query_id)]
    return train, held


def run(args: argparse.Namespace) -> dict[str, Any]:
    settings = load_settings()
    start = time.perf_counter()
    catalog = args.catalog or settings.sample_dir / "catalog.jsonl"
    simulated = args.clicks is None and args.judgments is None
    products = load_catalog(catalog)
    if not products:
        raise InvalidInput(f"no products in {catalog}")
    logger.info("catalog %s: %d products", catalog, len(products))
    names = _feature_names(args.exclude_features, simulated)
    data_info: dict[str, Any] = {"catalog": _shown(catalog), "n_products": len(products)}
    heldout: list[ltr_data.RankedList] = []

    if simulated:
        queries = sim.make_queries(products, args.queries, args.seed)
        lists = sim.build_lists(products, queries, top_n=args.top_n)
        train_sl = [s for s in lists if not s.heldout]  # held-out queries get no clicks at all
        clicks = sim.simulate_clicks(
            train_sl, sessions=args.sessions, seed=args.seed, progress=True
        )
        heldout = ltr_data.lists_from_sim([s for s in lists if s.heldout])
        docs = {c.doc_id: c.doc for s in train_sl for c in s.candidates}
        ts = ltr_data.training_from_clicks(
            ltr_data.rows_from_sim(clicks), docs, skip_above=not args.no_skip_above
        )
        data_info.update(
            source=f"{sim.SIMULATED} clicks (engine.train.datagen.clicks; not real shoppers)",
            n_queries=len(lists),
            n_train_queries=len(train_sl),
            sessions_per_query=args.sessions,
            n_impressions=len(clicks),
            n_clicks=sum(c.clicked for c in clicks),
        )
        if args.write_simulated is not None:
            out = Path(args.write_simulated)
            n = ltr_data.write_jsonl(out / "clicks.simulated.jsonl", (c.to_json() for c in clicks))
            m = ltr_data.write_jsonl(
                out / "judgments.simulated.jsonl",
                (
                    {"query_id": s.query.query_id, "doc_id": d, "grade": g, "simulated": True}
                    for s in lists
                    for d, g in s.truth.items()
                ),
            )
            logger.info("wrote %d simulated impressions and %d judgments to %s", n, m, out)
    elif args.clicks is not None:
        click_rows = ltr_data.read_clicks(args.clicks)
        train_rows = [r for r in click_rows if not sim.is_heldout(r.query_id)]
        ts = ltr_data.training_from_clicks(
            train_rows, _docs(products), skip_above=not args.no_skip_above
        )
        data_info.update(source=f"click log {args.clicks}", n_impressions=len(click_rows))
        if args.eval_judgments is not None:
            judged = ltr_data.lists_from_judgments(
                ltr_data.read_judgments(args.eval_judgments), _docs(products)
            )
            heldout = _split(judged)[1]
    else:
        judged = ltr_data.lists_from_judgments(
            ltr_data.read_judgments(args.judgments), _docs(products)
        )
        train_l, heldout = _split(judged)
        ts = ltr_data.training_from_lists(train_l)
        data_info.update(source=f"judgment list {args.judgments}", n_queries=len(judged))

    params = TrainParams(
        n_estimators=args.n_estimators, max_depth=args.max_depth, learning_rate=args.learning_rate
    )
    version = args.version or "gbdt-lr-" + datetime.now(UTC).strftime("%Y%m%d%H%M%S")
    logger.info(
        "training GBDT+LR on %d examples from %d queries (%d features)",
        ts.y.size,
        ts.n_queries,
        len(names),
    )
    with tqdm(total=1, desc="training GBDT+LR") as bar:
        model = train_model(
            ts.x,
            ts.y,
            groups=ts.groups,
            sample_weight=ts.weight,
            params=params,
            seed=args.seed,
            feature_names=names,
            version=version,
            metadata={"training_data": data_info, "simulated": simulated},
        )
        bar.update(1)

    report: dict[str, Any] = {
        "simulated": simulated,
        "label": sim.SIMULATED if simulated else "real data",
        "data": data_info,
        "train": {"n_examples": int(ts.y.size), "n_queries": ts.n_queries},
        "model": {"version": version, "used_features": model.used_features()},
        "seed": args.seed,
    }
    if heldout:
        ev = ltr_data.evaluate(heldout, model, [RerankBlend(ltr_weight=w) for w in SWEEP])
        default_w = f"{RerankBlend().ltr_weight:g}"
        report["heldout"] = {
            "n_queries": ev["n_queries"],
            "ndcg_at_10_before": ev["ndcg_at_10_before"],
            "ndcg_at_10_after": ev["ndcg_at_10_after_by_ltr_weight"][default_w],
            "default_ltr_weight": RerankBlend().ltr_weight,
            "ndcg_at_10_after_by_ltr_weight": ev["ndcg_at_10_after_by_ltr_weight"],
            "labels": "simulated truth" if simulated else "judgments",
        }
    model.metadata["report"] = report
    out = DEFAULT_MODEL_PATH if args.install_default else args.out
    paths = model.save(out)
    report["model"]["paths"] = [str(p) for p in paths]
    if args.export_ltr is not None:
        from engine.train.ltr_export import export_files

        report["model"]["ltr_plugin_export"] = [
            str(p) for p in export_files(model, args.export_ltr)
        ]
    report["seconds"] = round(time.perf_counter() - start, 2)
    return report


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setup_logging(args)
    try:
        report = run(args)
    except EngineError as exc:
        return fail(exc)
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.report is not None:
        args.report.parent.mkdir(parents=True, exist_ok=True)
        args.report.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
