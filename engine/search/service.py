"""Search orchestration: encoders -> pure query builders -> :class:`engine.backend.Backend`.

Three query types:

* **text** (:meth:`SearchService.text_search`): BM25 over the product text fields plus k-NN on
  ``text_embedding`` with the joint model's text vector, combined by the installed hybrid search
  pipeline (min-max normalisation, weighted arithmetic mean). A request may override the weights:
  the body then carries a *temporary* pipeline (``search_pipeline`` object in the request body,
  verified on OpenSearch 2.19.1). When the cluster rejects temporary pipelines the service fuses
  the two result lists itself (:mod:`engine.search.fusion`, same semantics) and says so in
  ``notes``.
* **image** (:meth:`SearchService.image_search`, :meth:`SearchService.similar_to_item`): the
  photo's joint embedding -> category prediction (classifier fused with a similarity-weighted
  kNN vote, :mod:`engine.search.category`) -> k-NN restricted to the predicted article type when
  confident -> optionally a Hamming coarse pass on ``binary_code`` with an exact cosine re-rank
  -> the top 60 re-scored by colour x type agreement with the query photo's predictions (or the
  query item's stored ``attr_prob``), :mod:`engine.search.attribute_rerank`.
* **compose** (:meth:`SearchService.compose_search`): ``normalize(f_image + w f_text(wanted) -
  w_neg f_text(unwanted))`` with a soft attribute filter (:mod:`engine.search.compose`).

Every path ends with the **quality re-rank** (:mod:`engine.search.quality`) when the service
has one (the API's does): the merchandiser's live LTR blend re-orders the top ``top_n`` hits;
``strategy`` then ends in ``+ltr``.

``explain=True`` adds a per-stage breakdown to every hit (BM25 and vector scores raw and
normalised, fused score, category, Hamming distance, soft-filter or attribute re-rank factor,
LTR score).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from engine.backend import Backend
from engine.bundle import CatalogFitCheck
from engine.documents import slug
from engine.errors import ClusterRequestError, InvalidInput, NotFound
from engine.ltr.rerank import RerankBlend
from engine.queries import (
    BINARY_FIELD,
    DEFAULT_FLOOR,
    IMAGE_FIELD,
    JOINT_FIELD,
    TEXT_FIELD,
    Filters,
    SoftFilter,
    Source,
    bm25_search_body,
    coarse_image_search_body,
    compose_search_body,
    cosine_from_score,
    hybrid_pipeline_body,
    hybrid_search_body,
    image_search_body,
    pipeline_weights,
    vector_search_body,
)
from engine.search.attribute_rerank import (
    RERANK_ATTRIBUTES,
    AttrDist,
    AttributeRerank,
    neighbour_distribution,
    own_fields,
    query_distribution,
    rerank,
)
from engine.search.category import CategoryPrediction, predict_category
from engine.search.compose import (
    AttributeLexicon,
    AttributeMatch,
    compose_vector,
    flatten_attr_prob,
    parse_modifier,
    soft_factor,
    soft_fields,
)
from engine.search.fusion import fuse
from engine.search.quality import LTR_DOC_FIELDS, QualityRerank, Signals
from engine.search.schemas import (
    AttributeValue,
    CategoryInfo,
    Hit,
    HitExplain,
    HybridWeights,
    SearchResponse,
    SoftFilterInfo,
)
from engine.settings import ApiSettings, Settings

logger = logging.getLogger(__name__)

NO_PIPELINE = "_none"  # skip the index's default search pipeline (non-hybrid queries)
FALLBACK_WEIGHTS = (0.4, 0.6)  # used only when neither the cluster nor plugin_config says


@dataclass(frozen=True)
class SearchOptions:
    """Retrieval knobs.

    Category fusion (alpha, vote_k, threshold) and query arithmetic (compose_k, text_weight,
    soft filter, category restriction) were chosen on the validation slice of the training
    items (``engine.train.joint.is_val_id``) of the 9.5k photographed catalog items, never on
    the test split; see the search section of the evaluation report for test numbers.
    """

    knn_k: int = 100  # neighbours searched by k-NN (sub-)queries
    # hits of each hybrid sub-query normalised and combined (OpenSearch's pagination_depth),
    # whatever the page size; None: only `size` deep. Chosen on 200 attribute queries from the
    # validation items (44k index, page of 10): nDCG@10 / p50 with the query vector cached:
    # page-deep 0.885 / 22.5 ms, 20: 0.895 / 25.6, 30: 0.902 / 30.0, 40: 0.906 / 32.6,
    # 60: 0.914 / 40.6, 100: 0.921 / 56.9 ms. Test queries: 0.864 (page-deep) -> 0.908 (60).
    hybrid_depth: int | None = 60
    fusion_depth: int | None = (
        None  # per-sub-query list depth for client fusion (None: hybrid_depth)
    )
    vote_k: int = 20  # nearest catalog images that vote on the query photo's category
    category_alpha: float = 0.5  # classifier weight in the category fusion
    category_threshold: float = 0.5  # restrict to the category at this fused probability
    coarse: bool = False  # Hamming coarse pass + exact re-rank by default
    coarse_k: int = 200  # coarse candidates re-ranked exactly
    compose_k: int = 200  # neighbours of the composed vector that the soft filter re-scores
    text_weight: float = 1.25  # w of f_text(wanted) in query arithmetic
    negative_weight: float = 0.5  # w_neg of f_text(unwanted)
    soft_floor: float = DEFAULT_FLOOR
    image_field: str = IMAGE_FIELD
    text_field: str = TEXT_FIELD
    compose_field: str = IMAGE_FIELD
    text_cache_size: int = 4096
    pipeline_ttl_s: float = 5.0  # explain reads the installed weights at most this stale
    # photo / item queries: re-score the top neighbours by colour and type agreement
    # (engine.search.attribute_rerank); None turns it off
    attribute_rerank: AttributeRerank | None = AttributeRerank()


def _default_weights() -> tuple[float, float]:
    """The weights shipped in plugin_config/pipelines/hybrid.json."""
    from engine.config.desired import CONFIG_DIR

    try:
        body = json.loads((CONFIG_DIR / "pipelines" / "hybrid.json").read_text())
    except (OSError, json.JSONDecodeError):
        return FALLBACK_WEIGHTS
    return pipeline_weights(body) or FALLBACK_WEIGHTS


class _LRU:
    def __init__(self, size: int) -> None:
        self.size = size
        self._data: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: str) -> np.ndarray | None:
        with self._lock:
            v = self._data.get(key)
            if v is not None:
                self._data.move_to_end(key)
            return v

    def put(self, key: str, value: np.ndarray) -> None:
        if self.size <= 0:
            return
        with self._lock:
            self._data[key] = value
            self._data.move_to_end(key)
            while len(self._data) > self.size:
                self._data.popitem(last=False)


def _ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def _hit(h: dict[str, Any], explain: HitExplain | None = None) -> Hit:
    src = h.get("_source") or {}
    if explain is not None and h.get("_ltr_score") is not None:
        explain.ltr = round(float(h["_ltr_score"]), 6)
    return Hit(
        id=str(h["_id"]),
        score=float(h.get("_score") or 0.0),
        title=src.get("title"),
        brand=src.get("brand"),
        gender=src.get("gender"),
        article_type=src.get("article_type"),
        base_colour=src.get("base_colour"),
        colours=src.get("colours"),
        price=src.get("price"),
        discounted_price=src.get("discounted_price"),
        in_stock=src.get("in_stock"),
        image_urls=src.get("image_urls"),
        slot=src.get("slot"),
        explain=explain,
    )


def _hits(res: dict[str, Any]) -> list[dict[str, Any]]:
    return list(res.get("hits", {}).get("hits", []))


def _attribute_rerank(
    raw: list[dict[str, Any]], query: AttrDist, rr: AttributeRerank, *, own: bool = False
) -> tuple[list[dict[str, Any]], dict[str, float]]:
    """Hits re-scored by :func:`engine.search.attribute_rerank.rerank`; each keeps its k-NN
    score under ``_knn_score`` and gets ``_score`` = cosine x factor. ``own``: documents are
    described by their own catalog fields, not the model's ``attr_prob``."""
    by_id = {str(h["_id"]): h for h in raw}
    scored = rerank(
        [
            (
                str(h["_id"]),
                cosine_from_score(h["_score"]),
                own_fields(h.get("_source")) if own else (h.get("_source") or {}).get("attr_prob"),
            )
            for h in raw
        ],
        query,
        rr.floors(),
    )
    out = []
    for doc_id, score, _ in scored:
        h = dict(by_id[doc_id])
        h["_knn_score"] = h["_score"]
        h["_score"] = score
        out.append(h)
    return out, {doc_id: round(f, 6) for doc_id, _, f in scored}


def _unsigned(code: Sequence[int]) -> np.ndarray:
    return np.asarray([int(b) & 0xFF for b in code], dtype=np.uint8)


def _hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


def _same(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()


def _pipeline_rejected(exc: ClusterRequestError) -> bool:
    text = f"{exc.message} {exc.details.get('reason', '')}".lower()
    return "pipeline" in text or "hybrid" in text


class SearchService:
    """Text, image and composed product search over one products index."""

    def __init__(
        self,
        backend: Backend,
        *,
        index: str,
        pipeline: str,
        model: Callable[[], Any] | Any,
        api: ApiSettings | None = None,
        options: SearchOptions | None = None,
        quality: QualityRerank | None = None,
        fit_check: CatalogFitCheck | None = None,
    ) -> None:
        self.backend = backend
        self.quality = quality
        self.index = index
        self.pipeline = pipeline
        self.api = api or ApiSettings()
        self.options = options or SearchOptions()
        if hasattr(model, "embed_texts"):
            self._model_fn: Callable[[], Any] = lambda: model
        else:
            self._model_fn = model
        self._text_cache = _LRU(self.options.text_cache_size)
        self._weights_cache: tuple[float, tuple[float, float] | None] | None = None
        self._lexicon: AttributeLexicon | None = None
        self._lexicon_model: int | None = None
        # Never serve a classifier that does not know the catalog: when the bundle's type
        # labels miss the index's, the category step is the k-NN vote over the index alone.
        self.fit_check = fit_check or CatalogFitCheck(
            lambda: backend.term_counts(index, "article_type"),
            lambda: list(self.model.attribute_vocab.get("article_type") or []),
        )

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        backend: Backend,
        model: Callable[[], Any] | Any,
        *,
        index: str | None = None,
        options: SearchOptions | None = None,
        quality: QualityRerank | None = None,
    ) -> SearchService:
        """``options`` default: :class:`SearchOptions` with ``api.search_hybrid_depth``."""
        if options is None:
            depth = settings.api.search_hybrid_depth
            options = SearchOptions(hybrid_depth=depth or None)
        return cls(
            backend,
            index=index or settings.cluster.products_index,
            pipeline=settings.cluster.hybrid_pipeline,
            model=model,
            api=settings.api,
            options=options,
            quality=quality,
        )

    # ------------------------------------------------------------------ quality re-rank
    def _blend(self) -> RerankBlend | None:
        """The live LTR blend when the quality stage will re-rank, else None."""
        return self.quality.live() if self.quality is not None else None

    @staticmethod
    def _fetch(size: int, blend: RerankBlend | None) -> int:
        """How many hits to retrieve so the quality stage sees its ``top_n`` candidates."""
        return max(size, blend.top_n) if blend is not None else size

    @staticmethod
    def _source(blend: RerankBlend | None, extra: tuple[str, ...] = ()) -> Source:
        return Source(extra=(*extra, *LTR_DOC_FIELDS) if blend is not None else extra)

    def _quality_stage(
        self,
        raw: list[dict[str, Any]],
        blend: RerankBlend | None,
        size: int,
        signals: Signals | None = None,
    ) -> tuple[list[dict[str, Any]], str]:
        """The first ``size`` hits after the quality re-rank, and the strategy suffix."""
        if blend is None or self.quality is None:
            return raw[:size], ""
        out, ran = self.quality.apply(raw, blend, signals)
        return out[:size], "+ltr" if ran else ""

    # ------------------------------------------------------------------ encoders
    @property
    def model(self) -> Any:
        return self._model_fn()

    def embed_text(self, text: str) -> np.ndarray:
        """The joint text vector of a query (LRU-cached: popular queries repeat)."""
        key = " ".join(text.lower().split())
        hit = self._text_cache.get(key)
        if hit is not None:
            return hit
        vec = np.asarray(self.model.embed_texts([text])[0], dtype=np.float32)
        self._text_cache.put(key, vec)
        return vec

    def embed_image(self, image: Image.Image) -> np.ndarray:
        return np.asarray(self.model.embed_images([image])[0], dtype=np.float32)

    def embed_image_attributes(self, image: Image.Image) -> tuple[np.ndarray, AttrDist | None]:
        """The photo's joint vector and its predicted colour and type distributions (None
        with a model that predicts no attributes from photos, e.g. a plugged-in CLIP)."""
        model = self.model
        if not hasattr(model, "image_attribute_probabilities"):
            return self.embed_image(image), None
        feats = model.image_features([image])
        emb = model.embed_image_features(feats)
        vec = np.asarray(emb[0], dtype=np.float32)
        probs = model.image_attribute_probabilities(feats, emb)
        dist = {
            name: {
                str(v): float(p)
                for v, p in zip(model.attribute_vocab[name], probs[name][0], strict=True)
            }
            for name in RERANK_ATTRIBUTES
            if name in probs
        }
        return vec, query_distribution(dist, RERANK_ATTRIBUTES)

    def classifier_probs(self, vector: np.ndarray) -> dict[str, float]:
        """The attribute head's article-type distribution for a joint embedding."""
        model = self.model
        probs = model.attribute_probabilities(np.asarray(vector, np.float32)[None, :])
        p = probs.get("article_type")
        if p is None:
            return {}
        vocab = model.attribute_vocab["article_type"]
        return {str(vocab[j]): float(p[0, j]) for j in range(len(vocab))}

    def lexicon(self) -> AttributeLexicon:
        model = self.model
        if self._lexicon is None or self._lexicon_model != id(model):
            self._lexicon = AttributeLexicon(model.attribute_vocab)
            self._lexicon_model = id(model)
        return self._lexicon

    # ------------------------------------------------------------------ pipeline weights
    def installed_weights(self) -> tuple[float, float] | None:
        """(bm25, vector) weights of the installed hybrid pipeline; None when it is missing."""
        now = time.monotonic()
        cached = self._weights_cache
        if cached is not None and cached[0] > now:
            return cached[1]
        body = self.backend.get_search_pipeline(self.pipeline)
        weights = pipeline_weights(body) if body is not None else None
        self._weights_cache = (now + self.options.pipeline_ttl_s, weights)
        return weights

    # ------------------------------------------------------------------ text
    def text_search(
        self,
        query: str,
        filters: Filters = Filters(),
        *,
        size: int = 20,
        mode: str = "hybrid",
        weights: tuple[float, float] | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        t0 = time.perf_counter()
        query = query.strip()
        if not query:
            raise InvalidInput("query must not be blank")
        if mode not in ("bm25", "vector", "hybrid"):
            raise InvalidInput(f"unknown text search mode {mode!r}", mode=mode)
        blend = self._blend()
        fetch = self._fetch(size, blend)
        if mode == "bm25":
            body = bm25_search_body(query, filters, size=fetch, source=self._source(blend))
            res = self.backend.search(self.index, body, search_pipeline=NO_PIPELINE)
            raw, tag = self._quality_stage(
                _hits(res), blend, size, lambda h: {"bm25": h.get("_score")}
            )
            hits = [_hit(h, HitExplain(bm25=h["_score"]) if explain else None) for h in raw]
            return SearchResponse(type="text", strategy="bm25" + tag, took_ms=_ms(t0), hits=hits)
        vec = self.embed_text(query)
        if mode == "vector":
            body = vector_search_body(
                self.options.text_field,
                vec,
                filters,
                k=self.options.knn_k,
                size=fetch,
                source=self._source(blend),
            )
            res = self.backend.search(self.index, body, search_pipeline=NO_PIPELINE)
            raw, tag = self._quality_stage(
                _hits(res), blend, size, lambda h: {"text_sim": h.get("_score")}
            )
            hits = [
                _hit(h, HitExplain(vector=cosine_from_score(h["_score"])) if explain else None)
                for h in raw
            ]
            return SearchResponse(type="text", strategy="knn" + tag, took_ms=_ms(t0), hits=hits)
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
        notes: list[str] = []
        final_size, size = size, self._fetch(size, blend)
        installed = self.installed_weights()
        if weights is None and installed is not None:
            used = installed
            body = hybrid_search_body(
                query,
                vec,
                filters,
                k=self.options.knn_k,
                size=size,
                vector_field=self.options.text_field,
                source=self._source(blend),
                pagination_depth=self.options.hybrid_depth,
            )
            pipeline: str | None = self.pipeline
            strategy = "hybrid"
        else:
            used = weights or _default_weights()
            if weights is None:
                notes.append(
                    f"search pipeline {self.pipeline} is not installed; "
                    "using a temporary pipeline with the default weights"
                )
            body = hybrid_search_body(
                query,
                vec,
                filters,
                k=self.options.knn_k,
                size=size,
                pipeline=hybrid_pipeline_body(used),
                vector_field=self.options.text_field,
                source=self._source(blend),
                pagination_depth=self.options.hybrid_depth,
            )
            pipeline = None
            strategy = "hybrid-request-weights" if weights is not None else "hybrid-default-weights"
        total = sum(used)
        used = (used[0] / total, used[1] / total)
        wmodel = HybridWeights(bm25=used[0], vector=used[1])
        server_hits: list[dict[str, Any]] | None
        try:
            res = self.backend.search(self.index, body, search_pipeline=pipeline)
            server_hits = _hits(res)
        except ClusterRequestError as exc:
            if not _pipeline_rejected(exc):
                raise
            logger.warning("hybrid query rejected (%s); fusing client-side", exc.message)
            notes.append(f"hybrid query rejected by the cluster ({exc.message}); fused client-side")
            server_hits = None
            strategy = "client-fusion"
        if server_hits is not None and not explain:
            raw, tag = self._quality_stage(server_hits, blend, final_size)
            hits = [_hit(h) for h in raw]
            return SearchResponse(
                type="text",
                strategy=strategy + tag,
                took_ms=_ms(t0),
                hits=hits,
                weights=wmodel,
                notes=notes,
            )
        # Both lists (bm25, vector) in one round trip: the explain breakdown or the fallback.
        depth = max(self.options.fusion_depth or self.options.hybrid_depth or size, size)
        bodies = [
            bm25_search_body(query, filters, size=depth, source=self._source(blend)),
            vector_search_body(
                self.options.text_field,
                vec,
                filters,
                k=max(self.options.knn_k, depth),
                size=depth,
                source=self._source(blend),
            ),
        ]
        lex, sem = self.backend.msearch(self.index, bodies)
        lex_scores = {str(h["_id"]): float(h["_score"]) for h in _hits(lex)}
        sem_scores = {str(h["_id"]): float(h["_score"]) for h in _hits(sem)}
        fused = {f.doc_id: f for f in fuse([lex_scores, sem_scores], used)}
        sources = {str(h["_id"]): h for h in _hits(lex) + _hits(sem)}
        if server_hits is None:
            ordered = sorted(fused.values(), key=lambda f: (-f.score, f.doc_id))[:size]
            server_hits = [{**sources[f.doc_id], "_score": f.score} for f in ordered]

        def signals(h: Any) -> dict[str, float | None]:
            return {
                "bm25": lex_scores.get(str(h["_id"])),
                "text_sim": sem_scores.get(str(h["_id"])),
            }

        server_hits, tag = self._quality_stage(server_hits, blend, final_size, signals)
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
            hits.append(_hit(h, ex))
        return SearchResponse(
            type="text",
            strategy=strategy,
            took_ms=_ms(t0),
            hits=hits,
            weights=wmodel,
            notes=notes,
        )

    # ------------------------------------------------------------------ image
    def predict_category(
        self, vector: np.ndarray, filters: Filters = Filters(), *, size: int = 0
    ) -> tuple[CategoryPrediction, list[dict[str, Any]]]:
        """Fused category of a query vector, and the unrestricted neighbours fetched for the
        vote (``max(vote_k, size)`` of them, with result fields: reusable as results)."""
        n = max(self.options.vote_k, size, 1)
        body = vector_search_body(self.options.image_field, vector, filters, k=n, size=n)
        res = self.backend.search(self.index, body, search_pipeline=NO_PIPELINE)
        neighbours = _hits(res)
        votes = [
            ((h.get("_source") or {}).get("article_type"), cosine_from_score(h["_score"]))
            for h in neighbours[: self.options.vote_k]
        ]
        classifier = self.classifier_probs(vector) if self.fit_check.fitted() else {}
        pred = predict_category(
            classifier,
            votes,
            alpha=self.options.category_alpha,
            threshold=self.options.category_threshold,
        )
        return pred, neighbours

    def image_search(
        self,
        image: Image.Image,
        filters: Filters = Filters(),
        *,
        size: int = 20,
        category: str = "auto",
        coarse: bool | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Products that look like a photo (re-scored by colour and type agreement)."""
        t0 = time.perf_counter()
        if self.options.attribute_rerank is not None:
            vec, query_attrs = self.embed_image_attributes(image)
        else:
            vec, query_attrs = self.embed_image(image), None
        return self._vector_search(
            vec,
            filters,
            size=size,
            category=category,
            coarse=coarse,
            explain=explain,
            t0=t0,
            query_attrs=query_attrs,
        )

    def search_by_vector(
        self,
        vector: np.ndarray,
        filters: Filters = Filters(),
        *,
        size: int = 20,
        category: str = "auto",
        coarse: bool | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """Image search from a precomputed joint image embedding (same pipeline, no query
        attributes: no attribute re-rank)."""
        t0 = time.perf_counter()
        return self._vector_search(
            np.asarray(vector, dtype=np.float32).reshape(-1),
            filters,
            size=size,
            category=category,
            coarse=coarse,
            explain=explain,
            t0=t0,
        )

    def item_vector(self, item_id: str, fields: Sequence[str] = ()) -> tuple[np.ndarray, dict]:
        """A catalog item's stored image vector (joint vector when it has no photo)."""
        want = [self.options.image_field, JOINT_FIELD, "article_type", *fields]
        try:
            src = self.backend.get_source(self.index, item_id, list(dict.fromkeys(want)))
        except NotFound:
            raise NotFound(f"no product with id {item_id!r}", item_id=item_id) from None
        vec = src.get(self.options.image_field) or src.get(JOINT_FIELD)
        if not vec:
            raise InvalidInput(f"product {item_id!r} has no stored embedding", item_id=item_id)
        return np.asarray(vec, dtype=np.float32), src

    def similar_to_item(
        self,
        item_id: str,
        filters: Filters = Filters(),
        *,
        size: int = 20,
        category: str = "auto",
        coarse: bool | None = None,
        explain: bool = False,
    ) -> SearchResponse:
        """More like this product: its stored image embedding, itself excluded; ``auto``
        restricts to its own article type."""
        t0 = time.perf_counter()
        vec, src = self.item_vector(item_id, fields=(BINARY_FIELD, "attr_prob"))
        code = _unsigned(src[BINARY_FIELD]) if src.get(BINARY_FIELD) else None
        stored = src.get("attr_prob") or {}
        query_attrs = {slug(a): stored[slug(a)] for a in RERANK_ATTRIBUTES if stored.get(slug(a))}
        return self._vector_search(
            vec,
            filters.excluding([item_id]),
            size=size,
            category=category,
            coarse=coarse,
            explain=explain,
            t0=t0,
            item_category=src.get("article_type"),
            code=code,
            query_attrs=query_attrs or None,
        )

    def _category_step(
        self,
        vec: np.ndarray,
        filters: Filters,
        size: int,
        category: str,
        item_category: str | None,
    ) -> tuple[CategoryInfo, str | None, list[dict[str, Any]] | None]:
        if filters.article_type:
            label = filters.article_type[0] if len(filters.article_type) == 1 else None
            return (
                CategoryInfo(label=label, confidence=1.0, restricted=True, source="filter"),
                None,
                None,
            )
        if category == "off":
            return (
                CategoryInfo(label=None, confidence=0.0, restricted=False, source="off"),
                None,
                None,
            )
        if item_category:
            info = CategoryInfo(label=item_category, confidence=1.0, restricted=True, source="item")
            return info, item_category, None
        pred, neighbours = self.predict_category(vec, filters, size=size)
        info = CategoryInfo(
            label=pred.label,
            confidence=round(pred.confidence, 6),
            restricted=pred.restrict,
            source="predicted",
            fused=pred.fused,
            classifier=pred.classifier,
            vote=pred.vote,
        )
        return info, (pred.label if pred.restrict else None), neighbours

    def _vector_search(
        self,
        vec: np.ndarray,
        filters: Filters,
        *,
        size: int,
        category: str,
        coarse: bool | None,
        explain: bool,
        t0: float,
        item_category: str | None = None,
        code: np.ndarray | None = None,
        query_attrs: AttrDist | None = None,
    ) -> SearchResponse:
        info, restrict_to, neighbours = self._category_step(
            vec, filters, size, category, item_category
        )
        use_coarse = self.options.coarse if coarse is None else coarse
        extra: tuple[str, ...] = (BINARY_FIELD,) if (explain and use_coarse) else ()
        rr = self.options.attribute_rerank if query_attrs else None
        blend = self._blend()
        final_size = size
        size = self._fetch(size, blend)
        if rr is not None:
            extra = (*extra, "attr_prob")
            size = max(size, rr.depth)
        source = self._source(blend, extra)
        qcode: np.ndarray | None = None
        if use_coarse:
            qcode = code if code is not None else self._codes(vec)
            body = coarse_image_search_body(
                qcode,
                vec,
                filters,
                category=restrict_to,
                coarse_k=self.options.coarse_k,
                size=size,
                source=source,
                field_name=self.options.image_field,
            )
            strategy = "hamming-coarse+exact-rerank"
            raw = _hits(self.backend.search(self.index, body, search_pipeline=NO_PIPELINE))
        elif restrict_to is None and neighbours is not None and rr is None and blend is None:
            # the vote's neighbours are the unrestricted results (they lack attr_prob and are
            # fewer than the re-rank depth, so a re-rank fetches its own)
            strategy = "knn"
            raw = neighbours[:size]
        else:
            body = image_search_body(
                vec,
                filters,
                category=restrict_to,
                k=self.options.knn_k,
                size=size,
                source=source,
                field_name=self.options.image_field,
            )
            strategy = "knn-category" if restrict_to else "knn"
            raw = _hits(self.backend.search(self.index, body, search_pipeline=NO_PIPELINE))
        factors: dict[str, float] = {}
        if rr is not None and query_attrs:  # (rr is set only with query_attrs)
            if self.fit_check.fitted():
                raw, factors = _attribute_rerank(raw, query_attrs, rr)
                strategy += "+attribute-rerank"
            else:
                # the model's labels are not this catalog's: the query's colour and type are
                # the vote of its nearest documents' own fields, documents' are their own
                near = neighbours if neighbours else raw
                votes = neighbour_distribution(
                    [
                        (h.get("_source"), cosine_from_score(h["_score"]))
                        for h in near[: self.options.vote_k]
                    ]
                )
                raw, factors = _attribute_rerank(raw, votes, rr, own=True)
                strategy += "+catalog-attribute-rerank"
        raw, tag = self._quality_stage(
            raw,
            blend,
            final_size,
            lambda h: {"image_sim": h.get("_knn_score", h.get("_score"))},
        )
        strategy += tag
        hits = []
        for h in raw:
            ex = None
            if explain:
                src = h.get("_source") or {}
                ham = None
                if qcode is not None and src.get(BINARY_FIELD):
                    ham = _hamming(qcode, _unsigned(src[BINARY_FIELD]))
                ex = HitExplain(
                    vector=cosine_from_score(h.get("_knn_score", h["_score"])),
                    category=src.get("article_type"),
                    category_match=_same(src.get("article_type"), info.label)
                    if info.label
                    else None,
                    hamming=ham,
                    attribute_factor=factors.get(str(h["_id"])),
                )
            hits.append(_hit(h, ex))
        return SearchResponse(
            type="image", strategy=strategy, took_ms=_ms(t0), hits=hits, category=info
        )

    def _codes(self, vec: np.ndarray) -> np.ndarray:
        return np.asarray(self.model.codes(np.asarray(vec, np.float32)[None, :])[0], np.uint8)

    # ------------------------------------------------------------------ compose
    def compose_search(
        self,
        *,
        image: Image.Image | None = None,
        item_id: str | None = None,
        vector: np.ndarray | None = None,
        text: str | None = None,
        wanted: Sequence[str] = (),
        unwanted: Sequence[str] = (),
        filters: Filters = Filters(),
        size: int = 20,
        text_weight: float | None = None,
        negative_weight: float | None = None,
        soft_filter: bool = True,
        category: str = "auto",
        explain: bool = False,
    ) -> SearchResponse:
        """Query arithmetic: a photo (or a catalog item, or a precomputed image embedding)
        plus words to add and to remove."""
        t0 = time.perf_counter()
        if sum(x is not None for x in (image, item_id, vector)) != 1:
            raise InvalidInput("give exactly one of image, item_id or vector")
        if item_id is not None:
            vec, _ = self.item_vector(item_id)
            filters = filters.excluding([item_id])
        elif vector is not None:
            vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        else:
            assert image is not None
            vec = self.embed_image(image)
        modifier = parse_modifier(text).merged(wanted, unwanted)
        w = self.options.text_weight if text_weight is None else float(text_weight)
        wn = self.options.negative_weight if negative_weight is None else float(negative_weight)
        f_wanted = self.embed_text(" ".join(modifier.wanted)) if modifier.wanted else None
        f_unwanted = self.embed_text(" ".join(modifier.unwanted)) if modifier.unwanted else None
        q = compose_vector(vec, f_wanted, f_unwanted, text_weight=w, negative_weight=wn)
        want_m: list[AttributeMatch] = []
        avoid_m: list[AttributeMatch] = []
        if soft_filter and not modifier.empty:
            want_m, avoid_m = soft_fields(self.lexicon(), modifier)
        soft = SoftFilter(
            tuple(m.field for m in want_m),
            tuple(m.field for m in avoid_m),
            self.options.soft_floor,
        )
        info: CategoryInfo | None = None
        restrict_to: str | None = None
        names_type = any(m.attribute == "article_type" for m in want_m)
        if category == "auto" and not names_type and not filters.article_type:
            pred, _ = self.predict_category(vec, filters)
            info = CategoryInfo(
                label=pred.label,
                confidence=round(pred.confidence, 6),
                restricted=pred.restrict,
                source="predicted",
                fused=pred.fused,
                classifier=pred.classifier,
                vote=pred.vote,
            )
            restrict_to = pred.label if pred.restrict else None
        f = filters.with_article_type(restrict_to) if restrict_to else filters
        blend = self._blend()
        body = compose_search_body(
            q,
            soft,
            f,
            k=self.options.compose_k,
            size=self._fetch(size, blend),
            source=self._source(blend, ("attr_prob",) if explain else ()),
            field_name=self.options.compose_field,
        )
        raw = _hits(self.backend.search(self.index, body, search_pipeline=NO_PIPELINE))
        raw, tag = self._quality_stage(raw, blend, size)
        hits = []
        for h in raw:
            ex = None
            if explain:
                probs = flatten_attr_prob((h.get("_source") or {}).get("attr_prob"))
                factor = soft_factor(probs, soft.wanted, soft.unwanted, soft.floor)
                used = {k: probs.get(k, 0.0) for k in (*soft.wanted, *soft.unwanted)}
                ex = HitExplain(
                    vector=cosine_from_score(h["_score"] / factor) if factor > 0 else None,
                    soft_factor=factor,
                    attribute_probs=used or None,
                    category=(h.get("_source") or {}).get("article_type"),
                )
            hits.append(_hit(h, ex))
        soft_info = SoftFilterInfo(
            wanted_words=list(modifier.wanted),
            unwanted_words=list(modifier.unwanted),
            wanted=[_attr(m) for m in want_m],
            unwanted=[_attr(m) for m in avoid_m],
            applied=not soft.empty,
            floor=soft.floor,
            text_weight=w,
            negative_weight=wn,
        )
        strategy = "knn+soft-filter" if not soft.empty else "knn"
        if restrict_to:
            strategy += "+category"
        strategy += tag
        return SearchResponse(
            type="compose",
            strategy=strategy,
            took_ms=_ms(t0),
            hits=hits,
            category=info,
            soft_filter=soft_info,
        )


def _attr(m: AttributeMatch) -> AttributeValue:
    return AttributeValue(attribute=m.attribute, value=m.value, phrase=m.phrase, field=m.field)


__all__ = ["SearchOptions", "SearchService"]
