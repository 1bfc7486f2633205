"""Search quality on the TEST split, through the real service and an indexed copy of the catalog.

The evaluation catalog is ingested (ingest library, the trained joint model) into a throw-away
index named after its content and the model version, ``<prefix>-products-eval-<digest>``; a later
run with the same catalog and model reuses it (ingest also skips unchanged items). Query sources
are test items (never trained on); judgments cover the whole indexed catalog; the source item of
a photo query is excluded from its results.

Metrics (``evaluation.report.TASK_KEYS["search"]``):

* ``text_ndcg_at_10``: hybrid text search (installed pipeline), graded nDCG@10 on attribute
  queries (``evaluation.queries.attribute_queries``); ``text_ndcg_at_10_bm25``: BM25 alone.
* ``compose_{v,t,mm}_ndcg_at_10``: "this but in <colour>" (query photo + text, soft filter):
  visual nDCG, text nDCG and the geometric mean of their means.
* ``category_top1``: predicted article type of a query photo (classifier fused with the kNN
  vote); ``category_top1_classifier_only``: the attribute head alone.

Baselines: ``bm25_only`` and ``vector_only`` (text), ``hybrid_no_pagination_depth`` (hybrid
sub-query lists only as deep as the page), ``hybrid_default_ltr_blend`` (what the API serves on
a never-tuned cluster: the default LTR blend over the top 60, SIMULATED model), ``image_only`` (the photo alone, no text)
and ``text_only`` (the modifier text alone) for compose, ``compose_no_soft_filter`` (vector
arithmetic only), ``category_vote_only`` (the kNN vote alone).
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from engine.backend import Backend
from engine.catalog import Product
from engine.engines import connect, resolve_engine
from engine.ltr.rerank import RerankBlend
from engine.queries import Filters
from engine.search.quality import QualityRerank
from engine.search.service import SearchService
from engine.settings import PROJECT_ROOT, Settings
from evaluation.datasets import known, write_catalog
from evaluation.metrics import compose_ndcg, compose_summary, mean, ndcg_at_k
from evaluation.queries import attribute_queries, compose_queries
from evaluation.tasks.base import EvalContext, TaskResult

logger = logging.getLogger(__name__)

NAME = "search"
MODEL_KEY = "search.model"
INDEX_KEY = "search.index"
VECTORS_KEY = "search.image_vectors"
CACHE_DIR = PROJECT_ROOT / ".cache" / "search-eval"
K = 10


# --------------------------------------------------------------------------- shared helpers


def load_model(ctx: EvalContext) -> Any:
    """The joint model (shared through ``ctx.cache``); ModelUnavailable when missing."""
    if MODEL_KEY in ctx.cache:
        return ctx.cache[MODEL_KEY]
    joint_inputs = ctx.cache.get("joint.inputs")
    if joint_inputs is not None and getattr(joint_inputs, "model", None) is not None:
        model = joint_inputs.model
    else:
        from engine.models.joint import JointModel

        ms = ctx.settings.models
        model = JointModel.load(
            ms.joint_path, ms.device, batch_size=ms.batch_size, num_threads=ms.num_threads
        )
    if ctx.settings.models.onnx and hasattr(model, "accelerate"):
        # the backbones the API serves with (ONNX Runtime when installed and equivalent)
        logger.info("joint model backbones: %s", model.accelerate(ctx.settings.models.num_threads))
    ctx.cache[MODEL_KEY] = model
    return model


def model_version(settings: Settings) -> str:
    from ingest.encode import encoder_version

    return encoder_version(settings)


def eval_index_name(settings: Settings, products: Sequence[Product], version: str) -> str:
    """``<prefix>-products-eval-<digest of the item ids and the model version>``."""
    h = hashlib.sha1(version.encode())
    for item_id in sorted(p.id for p in products):
        h.update(b"\0" + item_id.encode())
    return f"{settings.cluster.index_prefix}-products-eval-{h.hexdigest()[:12]}"


def ensure_catalog_index(
    settings: Settings,
    products: Sequence[Product],
    images_dir: Path,
    model: Any,
    *,
    backend: Backend | None = None,
    progress: bool = True,
) -> str:
    """An index holding exactly ``products`` encoded by ``model``: reused when complete,
    otherwise (re)ingested (unchanged items are skipped by ingest). Returns its name."""
    from engine.config.desired import desired_objects
    from engine.config.installer import apply
    from engine.train.features import DEFAULT_CACHE_DIR
    from ingest import ingest_products

    backend = backend or connect(settings)
    # our index templates and pipeline, as `python -m engine.config apply` installs them
    # (idempotent), so the evaluation index gets the vector mappings on a fresh cluster too
    apply(
        backend,
        desired_objects(
            settings.cluster.index_prefix, replicas=0 if not settings.cluster.url else 1
        ),
    )
    version = model_version(settings)
    name = eval_index_name(settings, products, version)
    if backend.index_exists(name) and backend.count(name) == len(products):
        logger.info("reusing evaluation index %s (%d items)", name, len(products))
        return name
    # per engine: two runs at once (one per engine) build indices of the same name, and one
    # rewriting the other's catalog file while it is read loses rows
    work = CACHE_DIR / resolve_engine(settings)
    catalog = work / f"{name}.jsonl"
    write_catalog(list(products), catalog)
    logger.info("ingesting %d items into %s", len(products), name)
    report = ingest_products(
        settings,
        catalog,
        images_dir=images_dir,
        index=name,
        backend=backend,
        encoder=_encoder(model, DEFAULT_CACHE_DIR, settings),
        state_dir=work / "state",
        progress=progress,
    )
    count = backend.count(name)
    if count != len(products):
        logger.warning(
            "%s holds %d of %d items (failed: %d)", name, count, len(products), report.failed
        )
    return name


def _encoder(model: Any, feature_cache: Path, settings: Settings) -> Any:
    """The ingest encoder over ``model``, as ``python -m ingest`` builds it (ONNX Runtime
    backbones when enabled, available and equivalent; the documents' text encoder the settings
    name). With MiniLM documents, the MiniLM feature cache training fills is only read here,
    never rewritten (a rewrite would drop entries a concurrent training run adds, see
    engine/train/looks_vectors.py)."""
    from ingest.encode import JointEncoder

    if settings.models.onnx and hasattr(model, "accelerate"):
        model.accelerate()
    return JointEncoder.over_model(
        model, settings, feature_cache=feature_cache, save_text_cache=False
    )


def eval_index(ctx: EvalContext, model: Any) -> str:
    if INDEX_KEY not in ctx.cache:
        ctx.cache[INDEX_KEY] = ensure_catalog_index(
            ctx.settings, ctx.catalog, ctx.images_dir, model
        )
    name: str = ctx.cache[INDEX_KEY]
    return name


def image_vectors(ctx: EvalContext, model: Any, ids: Sequence[str]) -> dict[str, np.ndarray]:
    """Joint embeddings of the items' photos (computed in batches, cached in ctx.cache)."""
    cache: dict[str, np.ndarray] = ctx.cache.setdefault(VECTORS_KEY, {})
    ds = ctx.get_dataset()
    todo = [i for i in dict.fromkeys(ids) if i not in cache and ds.has_photo(i)]
    for start in range(0, len(todo), 32):
        chunk = todo[start : start + 32]
        images = [Image.open(ds.image(i)).convert("RGB") for i in chunk]
        for i, v in zip(chunk, model.embed_images(images), strict=True):
            cache[i] = np.asarray(v, dtype=np.float32)
    return {i: cache[i] for i in ids if i in cache}


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _r(x: float) -> float:
    return round(float(x), 4)


def _category_plot(
    ctx: EvalContext, items: Sequence[Product], fused: Sequence[bool], clf: Sequence[bool]
) -> list[Path]:
    """Bars of category top-1 per article type (types with >= 5 test photos)."""
    groups: dict[str, list[tuple[bool, bool]]] = {}
    for p, f, c in zip(items, fused, clf, strict=True):
        groups.setdefault(str(p.article_type), []).append((f, c))
    groups = {k: v for k, v in groups.items() if len(v) >= 5}
    if not groups:
        return []
    series = {
        "fused (classifier + kNN vote)": {k: mean([f for f, _ in v]) for k, v in groups.items()},
        "classifier only": {k: mean([c for _, c in v]) for k, v in groups.items()},
    }
    try:
        from evaluation.plots import category_bars

        return [
            category_bars(
                series,
                ctx.plot_path("search_category_top1_by_type"),
                title="Category of a query photo: top-1 per article type (test split)",
                ylabel="top-1 accuracy",
            )
        ]
    except Exception as exc:  # noqa: BLE001 - a missing plot must not fail the metrics
        logger.warning("could not draw the category plot: %s", exc)
        return []


# --------------------------------------------------------------------------- the task


def run(ctx: EvalContext) -> TaskResult:
    t0 = time.perf_counter()
    ds = ctx.get_dataset()
    if len(ds.test) < 5:
        return TaskResult(NAME, None, reason=f"only {len(ds.test)} test items in the catalog")
    model = load_model(ctx)
    index = eval_index(ctx, model)
    backend = connect(ctx.settings)
    svc = SearchService.from_settings(ctx.settings, backend, model, index=index)
    metrics: dict[str, Any] = {}
    baselines: dict[str, dict[str, Any]] = {}
    plots: list[Path] = []
    notes = [f"index {index}: {backend.count(index)} items; queries from the test split"]

    # ---- text: hybrid vs BM25 vs vector
    tq = attribute_queries(ds.products, n=ctx.capped(200), seed=ctx.seed, sources=ds.test)
    if tq:
        per: dict[str, list[float]] = {"hybrid": [], "bm25": [], "vector": []}
        for q in tq:
            for mode in per:
                res = svc.text_search(q.text, size=K, mode=mode)
                per[mode].append(ndcg_at_k([h.id for h in res.hits], q.relevance, K))
        # what the API serves on a never-tuned cluster: the default LTR blend (SIMULATED model)
        ltr_svc = SearchService.from_settings(
            ctx.settings, backend, model, index=index, quality=QualityRerank(RerankBlend)
        )
        with_ltr = [
            ndcg_at_k([h.id for h in ltr_svc.text_search(q.text, size=K).hits], q.relevance, K)
            for q in tq
        ]
        baselines["hybrid_default_ltr_blend"] = {"text_ndcg_at_10": _r(mean(with_ltr))}
        # hybrid lists only as deep as the page (no pagination_depth): what depth buys
        shallow_svc = SearchService.from_settings(
            ctx.settings,
            backend,
            model,
            index=index,
            options=replace(svc.options, hybrid_depth=None),
        )
        shallow = [
            ndcg_at_k([h.id for h in shallow_svc.text_search(q.text, size=K).hits], q.relevance, K)
            for q in tq
        ]
        baselines["hybrid_no_pagination_depth"] = {"text_ndcg_at_10": _r(mean(shallow))}
        metrics["text_ndcg_at_10"] = _r(mean(per["hybrid"]))
        metrics["text_ndcg_at_10_bm25"] = _r(mean(per["bm25"]))
        metrics["text_queries"] = len(tq)
        baselines["bm25_only"] = {"text_ndcg_at_10": _r(mean(per["bm25"]))}
        baselines["vector_only"] = {"text_ndcg_at_10": _r(mean(per["vector"]))}
        weights = svc.installed_weights()
        notes.append(f"{len(tq)} attribute text queries; hybrid weights (bm25, vector) {weights}")
    else:
        notes.append("no attribute text queries could be generated")

    # ---- compose: "this but in <colour>" from the source photo
    cq = compose_queries(
        ds.products, n=ctx.capped(100), seed=ctx.seed, sources=ds.test_photographed
    )
    vecs = image_vectors(ctx, model, [q.source_id for q in cq])
    cq = [q for q in cq if q.source_id in vecs]
    if cq:
        runs: dict[str, tuple[list[float], list[float]]] = {
            k: ([], []) for k in ("compose", "no_soft", "image_only", "text_only")
        }
        for cqi in cq:
            f = Filters(exclude_ids=(cqi.source_id,))
            vec = vecs[cqi.source_id]
            ranked = {
                "compose": svc.compose_search(vector=vec, text=cqi.text, filters=f, size=K),
                "no_soft": svc.compose_search(
                    vector=vec, text=cqi.text, filters=f, size=K, soft_filter=False
                ),
                "image_only": svc.search_by_vector(vec, f, size=K, category="off"),
                "text_only": svc.text_search(cqi.text, f, size=K, mode="vector"),
            }
            for key, res in ranked.items():
                scores = compose_ndcg(
                    [h.id for h in res.hits], cqi.visual_relevance, cqi.text_relevance, K
                )
                runs[key][0].append(scores["visual"])
                runs[key][1].append(scores["text"])

        def summary(key: str) -> dict[str, float]:
            s = compose_summary(*runs[key])
            return {
                "compose_v_ndcg_at_10": _r(s["visual"]),
                "compose_t_ndcg_at_10": _r(s["text"]),
                "compose_mm_ndcg_at_10": _r(s["mm"]),
            }

        metrics.update(summary("compose"))
        metrics["compose_queries"] = len(cq)
        baselines["compose_no_soft_filter"] = summary("no_soft")
        baselines["image_only"] = summary("image_only")
        baselines["text_only"] = summary("text_only")
        notes.append(
            f"{len(cq)} compose queries (photo + 'this but in <colour>'); text weight "
            f"{svc.options.text_weight}, negative weight {svc.options.negative_weight}"
        )
    else:
        notes.append("no compose queries: no photographed test items with colour variants")

    # ---- category of a query photo
    items = [p for p in ds.test_photographed if known(p.article_type)][: ctx.capped(300)]
    cvecs = image_vectors(ctx, model, [p.id for p in items])
    items = [p for p in items if p.id in cvecs]
    if items:
        fused, clf, vote = [], [], []
        for p in items:
            pred, _ = svc.predict_category(cvecs[p.id], Filters(exclude_ids=(p.id,)))
            fused.append(_same(pred.label, p.article_type))
            clf.append(_same(pred.classifier_label, p.article_type))
            vote.append(_same(pred.vote_label, p.article_type))
        plots.extend(_category_plot(ctx, items, fused, clf))
        # photo -> photos through the service: precision@10 of same article type and colour
        # (the whole indexed catalog is the gallery, the query item excluded)
        p10: dict[str, list[float]] = {"photo": [], "auto": [], "off": []}
        for p in items:
            if not known(p.base_colour):
                continue
            for mode, runs in p10.items():
                f = Filters(exclude_ids=(p.id,))
                if mode == "photo":  # the full photo path: category + attribute re-rank
                    with Image.open(ds.image(p.id)) as im:
                        res = svc.image_search(im.convert("RGB"), f, size=K)
                else:  # the stored vector alone: no query attributes, no re-rank
                    res = svc.search_by_vector(cvecs[p.id], f, size=K, category=mode)
                same = [
                    _same(h.article_type, p.article_type) and _same(h.base_colour, p.base_colour)
                    for h in res.hits
                ]
                runs.append(sum(same) / K)
        if p10["photo"]:
            metrics["image_p_at_10_type_colour"] = _r(mean(p10["photo"]))
            baselines["image_knn_category_no_rerank"] = {
                "image_p_at_10_type_colour": _r(mean(p10["auto"]))
            }
            baselines["image_knn_no_category"] = {"image_p_at_10_type_colour": _r(mean(p10["off"]))}
        metrics["category_top1"] = _r(mean(fused))
        metrics["category_top1_classifier_only"] = _r(mean(clf))
        metrics["category_queries"] = len(items)
        baselines["category_vote_only"] = {"category_top1": _r(mean(vote))}
        notes.append(
            f"{len(items)} test photos; category = {svc.options.category_alpha} x classifier + "
            f"{1 - svc.options.category_alpha:.2f} x vote of the {svc.options.vote_k} nearest "
            "photos (the query item excluded)"
        )
    if not metrics:
        return TaskResult(NAME, None, reason="no evaluation queries could be generated")
    return TaskResult(
        NAME,
        metrics,
        primary="text_ndcg_at_10",
        baselines=baselines,
        notes=notes,
        plots=plots,
        seconds=time.perf_counter() - t0,
    )
