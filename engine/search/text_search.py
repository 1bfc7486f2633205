"""Text search: BM25, k-NN on the text vector, or both combined by the hybrid search pipeline.

``hybrid`` sends one query that the installed pipeline normalises (min-max) and combines
(weighted arithmetic mean). A request may override the weights: the body then carries a
*temporary* pipeline (``search_pipeline`` object in the request body, verified on OpenSearch
2.19.1). When the cluster rejects temporary pipelines the two result lists are fused here
(:mod:`engine.search.fusion`, same semantics) and ``notes`` says so; ``explain`` fetches the
two lists too, for the per-stage breakdown.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from typing import Any

import numpy as np
from cachetools import TTLCache

from engine.errors import ClusterRequestError, InvalidInput
from engine.ltr.rerank import RerankBlend
from engine.queries import (
    Filters,
    bm25_search_body,
    cosine_from_score,
    hybrid_pipeline_body,
    hybrid_search_body,
    pipeline_weights,
    vector_search_body,
)
from engine.search.fusion import fuse
from engine.search.options import SearchOptions
from engine.search.schemas import HitExplain, HybridWeights, SearchResponse
from engine.search.stages import SearchContext, elapsed_ms, hits_of, to_hit

logger = logging.getLogger(__name__)

FALLBACK_WEIGHTS = (0.4, 0.6)  # used only when neither the cluster nor plugin_config says
MODES = ("bm25", "vector", "hybrid")


def default_weights() -> tuple[float, float]:
    """The weights shipped in plugin_config/pipelines/hybrid.json."""
    from engine.config.desired import CONFIG_DIR

    try:
        body = json.loads((CONFIG_DIR / "pipelines" / "hybrid.json").read_text())
    except (OSError, json.JSONDecodeError):
        return FALLBACK_WEIGHTS
    return pipeline_weights(body) or FALLBACK_WEIGHTS


def hybrid_k(opts: SearchOptions, size: int) -> int:
    """Neighbours the k-NN sub-query of a hybrid query searches: as many as the pipeline
    combines (``hybrid_depth``, at least the page), never more than ``knn_k``. Deeper k-NN lists
    are cut to ``pagination_depth`` by the hybrid collector anyway, so they only cost HNSW work."""
    if opts.hybrid_depth is None:
        return opts.knn_k
    return max(min(opts.knn_k, opts.hybrid_depth), size, 1)


def pipeline_rejected(exc: ClusterRequestError) -> bool:
    text = f"{exc.message} {exc.details.get('reason', '')}".lower()
    return "pipeline" in text or "hybrid" in text


class TextSearch:
    """Text queries over ``ctx.index``; ``pipeline``: the installed hybrid search pipeline."""

    def __init__(self, ctx: SearchContext, pipeline: str) -> None:
        self.ctx = ctx
        self.pipeline = pipeline
        # the installed weights, re-read at most every pipeline_ttl_s (a missing pipeline too)
        self._weights: TTLCache[str, tuple[float, float] | None] = TTLCache(
            maxsize=1, ttl=ctx.options.pipeline_ttl_s, timer=time.monotonic
        )
        self._lock = threading.Lock()

    def installed_weights(self) -> tuple[float, float] | None:
        """(bm25, vector) weights of the installed hybrid pipeline; None when it is missing."""
        with self._lock:
            try:
                return self._weights[self.pipeline]
            except KeyError:  # never read, or older than pipeline_ttl_s
                pass
        body = self.ctx.backend.get_search_pipeline(self.pipeline)
        weights = pipeline_weights(body) if body is not None else None
        with self._lock:
            self._weights[self.pipeline] = weights
        return weights

    def search(
        self,
        query: str,
        filters: Filters = Filters(),
        *,
        size: int = 20,
        mode: str = "hybrid",
        weights: tuple[float, float] | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """BM25 (``bm25``), k-NN on the text vector (``vector``) or both (``hybrid``, combined
        by the installed pipeline; ``weights`` = a per-request (bm25, vector) override)."""
        t0 = time.perf_counter()
        query = query.strip()
        if not query:
            raise InvalidInput("query must not be blank")
        if mode not in MODES:
            raise InvalidInput(f"unknown text search mode {mode!r}", mode=mode)
        ctx, quality = self.ctx, self.ctx.quality
        blend = quality.blend()
        fetch = quality.fetch(size, blend)
        if mode == "bm25":
            body = bm25_search_body(query, filters, size=fetch, source=ctx.source(blend))
            raw, tag = quality.apply(
                ctx.search(body), blend, size, lambda h: {"bm25": h.get("_score")}
            )
            hits = [to_hit(h, HitExplain(bm25=h["_score"]) if explain else None) for h in raw]
            return SearchResponse(
                type="text", strategy="bm25" + tag, took_ms=elapsed_ms(t0), hits=hits
            )
        vec = ctx.encoder.embed_text(query)
        if mode == "vector":
            body = vector_search_body(
                ctx.options.text_field,
                vec,
                filters,
                k=ctx.options.knn_k,
                size=fetch,
                source=ctx.source(blend),
            )
            raw, tag = quality.apply(
                ctx.search(body), blend, size, lambda h: {"text_sim": h.get("_score")}
            )
            hits = [
                to_hit(h, HitExplain(vector=cosine_from_score(h["_score"])) if explain else None)
                for h in raw
            ]
            return SearchResponse(
                type="text", strategy="knn" + tag, took_ms=elapsed_ms(t0), hits=hits
            )
        return self._hybrid(query, vec, filters, size, weights, explain, t0, blend)

    def _hybrid(
        self,
        query: str,
        vec: np.ndarray,
        filters: Filters,
        size: int,
        weights: tuple[float, float] | None,
        explain: bool,
        t0: float,
        blend: RerankBlend | None = None,
    ) -> SearchResponse:
        ctx, quality, opts = self.ctx, self.ctx.quality, self.ctx.options
        notes: list[str] = []
        final_size, size = size, quality.fetch(size, blend)
        installed = self.installed_weights()
        if weights is None and installed is not None:
            used = installed
            body = hybrid_search_body(
                query,
                vec,
                filters,
                k=hybrid_k(opts, size),
                size=size,
                vector_field=opts.text_field,
                source=ctx.source(blend),
                pagination_depth=opts.hybrid_depth,
            )
            pipeline: str | None = self.pipeline
            strategy = "hybrid"
        else:
            used = weights or default_weights()
            if weights is None:
                notes.append(
                    f"search pipeline {self.pipeline} is not installed; "
                    "using a temporary pipeline with the default weights"
                )
            body = hybrid_search_body(
                query,
                vec,
                filters,
                k=hybrid_k(opts, size),
                size=size,
                pipeline=hybrid_pipeline_body(used),
                vector_field=opts.text_field,
                source=ctx.source(blend),
                pagination_depth=opts.hybrid_depth,
            )
            pipeline = None
            strategy = "hybrid-request-weights" if weights is not None else "hybrid-default-weights"
        total = sum(used)
        used = (used[0] / total, used[1] / total)
        wmodel = HybridWeights(bm25=used[0], vector=used[1])
        server_hits: list[dict[str, Any]] | None
        try:
            res = ctx.backend.search(ctx.index, body, search_pipeline=pipeline)
            server_hits = hits_of(res)
        except ClusterRequestError as exc:
            if not pipeline_rejected(exc):
                raise
            logger.warning("hybrid query rejected (%s); fusing client-side", exc.message)
            notes.append(f"hybrid query rejected by the cluster ({exc.message}); fused client-side")
            server_hits = None
            strategy = "client-fusion"
        if server_hits is not None and not explain:
            raw, tag = quality.apply(server_hits, blend, final_size)
            hits = [to_hit(h) for h in raw]
            return SearchResponse(
                type="text",
                strategy=strategy + tag,
                took_ms=elapsed_ms(t0),
                hits=hits,
                weights=wmodel,
                notes=notes,
            )
        # Both lists (bm25, vector) in one round trip: the explain breakdown or the fallback.
        depth = max(opts.fusion_depth or opts.hybrid_depth or size, size)
        bodies = [
            bm25_search_body(query, filters, size=depth, source=ctx.source(blend)),
            vector_search_body(
                opts.text_field,
                vec,
                filters,
                k=max(opts.knn_k, depth),
                size=depth,
                source=ctx.source(blend),
            ),
        ]
        lex, sem = ctx.backend.msearch(ctx.index, bodies)
        lex_scores = {str(h["_id"]): float(h["_score"]) for h in hits_of(lex)}
        sem_scores = {str(h["_id"]): float(h["_score"]) for h in hits_of(sem)}
        fused = {f.doc_id: f for f in fuse([lex_scores, sem_scores], used)}
        sources = {str(h["_id"]): h for h in hits_of(lex) + hits_of(sem)}
        if server_hits is None:
            ordered = sorted(fused.values(), key=lambda f: (-f.score, f.doc_id))[:size]
            server_hits = [{**sources[f.doc_id], "_score": f.score} for f in ordered]

        def signals(h: Any) -> dict[str, float | None]:
            return {
                "bm25": lex_scores.get(str(h["_id"])),
                "text_sim": sem_scores.get(str(h["_id"])),
            }

        server_hits, tag = quality.apply(server_hits, blend, final_size, signals)
        strategy += tag
        hits = []
        for h in server_hits:
            f = fused.get(str(h["_id"]))
            ex = None
            if explain:
                sem_raw = sem_scores.get(str(h["_id"]))
                ex = HitExplain(
                    bm25=lex_scores.get(str(h["_id"])),
                    bm25_normalized=f.normalized[0] if f else 0.0,
                    vector=cosine_from_score(sem_raw) if sem_raw is not None else None,
                    vector_normalized=f.normalized[1] if f else 0.0,
                    weights=wmodel,
                    fused=f.score if f else 0.0,
                )
            hits.append(to_hit(h, ex))
        return SearchResponse(
            type="text",
            strategy=strategy,
            took_ms=elapsed_ms(t0),
            hits=hits,
            weights=wmodel,
            notes=notes,
        )
