"""Learning-to-rank re-ranking on SIMULATED shoppers (issue 8).

Candidates: for simulated attribute queries over ``ctx.catalog`` (``engine.train.datagen.clicks``),
the top 60 of an offline BM25 ranking of the product text. Labels: the simulated shopper's
graded preference (relevance to the query combined with a taste for rating, discount and a
lower price). Only held-out queries (fixed hash split, never used to train the shipped model)
are scored.

* ``ndcg_at_10_before_rerank``: nDCG@10 of the BM25 order;
* ``ndcg_at_10_after_rerank``: after ``engine.ltr.rerank.rerank`` with the shipped default
  model and the default blend.

Extra keys: the blend sweep, and a model retrained here on simulated clicks of this catalog's
training queries. Everything is SIMULATED: it shows the pipeline learns a known preference
from position-biased clicks, not that real shoppers would prefer the re-ranked order.
"""

from __future__ import annotations

import time

from engine.errors import ModelUnavailable
from engine.ltr.features import FEATURES, MISSING_SUFFIX
from engine.ltr.model import LtrModel
from engine.ltr.rerank import RerankBlend, load_model, rerank
from engine.train import ltr_data
from engine.train.datagen import clicks as sim
from engine.train.ltr_model import train_model
from evaluation.metrics import mean, ndcg_at_k
from evaluation.tasks.base import EvalContext, TaskResult

SWEEP = (0.25, 0.5, 0.75, 1.0)
DEFAULT_QUERIES = 400
EXCLUDED = ("bm25", "recency_days")  # as the shipped model (see engine.train.ltr)


def _ndcg(lists: list[ltr_data.RankedList], model: LtrModel | None, blend: RerankBlend) -> float:
    values = []
    for rl in lists:
        if model is None:
            ranked = [c.doc_id for c in rl.candidates]
        else:
            ranked = [
                r.doc_id
                for r in rerank(rl.candidates, model, blend=blend, reference_time=rl.reference_time)
            ]
        values.append(ndcg_at_k(ranked, rl.labels, 10))
    return mean(values)


def run(ctx: EvalContext) -> TaskResult:
    start = time.perf_counter()
    products = list(ctx.catalog)
    if not products:
        return TaskResult("ltr", None, reason="empty catalog")
    try:
        model = load_model()
    except ModelUnavailable as exc:
        return TaskResult("ltr", None, reason=f"no LTR model: {exc.message}")
    queries = sim.make_queries(products, None, ctx.seed)
    bm25 = sim.Bm25(products)
    held_q = [q for q in queries if sim.is_heldout(q.query_id)][: ctx.capped(DEFAULT_QUERIES)]
    train_q = [q for q in queries if not sim.is_heldout(q.query_id)][: ctx.capped(DEFAULT_QUERIES)]
    held = ltr_data.lists_from_sim(sim.build_lists(products, held_q, bm25=bm25))
    if not held:
        return TaskResult("ltr", None, reason="no held-out simulated query has a relevant item")
    blend = RerankBlend()
    before = _ndcg(held, None, blend)
    after = _ndcg(held, model, blend)
    sweep = {f"{w:g}": _ndcg(held, model, RerankBlend(ltr_weight=w)) for w in SWEEP}

    metrics: dict[str, object] = {
        "ndcg_at_10_before_rerank": before,
        "ndcg_at_10_after_rerank": after,
        "ndcg_at_10_after_rerank_by_ltr_weight": sweep,
        "n_heldout_queries": len(held),
        "model_version": model.version,
        "default_ltr_weight": blend.ltr_weight,
        "simulated": True,
    }
    notes = [
        "SIMULATED: queries, position-biased clicks and graded labels come from "
        "engine.train.datagen.clicks (not real shoppers).",
        f"shipped model {model.version}, ltr_weight={blend.ltr_weight:g}, top_n={blend.top_n}; "
        f"{len(held)} held-out queries, BM25 top-60 candidates.",
    ]

    train_lists = sim.build_lists(products, train_q, bm25=bm25)
    if train_lists:
        clicks = sim.simulate_clicks(train_lists, sessions=30, seed=ctx.seed)
        rows = ltr_data.rows_from_sim(clicks)
        docs = {c.doc_id: c.doc for s in train_lists for c in s.candidates}
        ts = ltr_data.training_from_clicks(rows, docs)
        drop = set(EXCLUDED) | {n + MISSING_SUFFIX for n in EXCLUDED}
        if len(set(ts.y.tolist())) == 2:
            retrained = train_model(
                ts.x,
                ts.y,
                groups=ts.groups,
                sample_weight=ts.weight,
                seed=ctx.seed,
                feature_names=[f for f in FEATURES if f not in drop],
                version="eval-retrained",
            )
            metrics["ndcg_at_10_after_rerank_retrained"] = _ndcg(held, retrained, blend)
            metrics["n_train_queries_retrained"] = len(train_lists)
            notes.append(
                f"retrained: a model fit here on simulated clicks of {len(train_lists)} "
                "training queries of this catalog (30 sessions each)."
            )
    return TaskResult(
        "ltr",
        metrics,
        primary="ndcg_at_10_after_rerank",
        baselines={"bm25_order": {"ndcg_at_10": before}},
        notes=notes,
        seconds=time.perf_counter() - start,
    )
