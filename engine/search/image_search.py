"""Photo search and "more like this": the joint image embedding of the query photo (or a
catalog item's stored one) -> category prediction (classifier fused with a similarity-weighted
kNN vote, :mod:`engine.search.category`) -> k-NN restricted to the predicted article type when
confident -> optionally a Hamming coarse pass on ``binary_code`` with an exact cosine re-rank
-> the top neighbours re-scored by colour x type agreement with the query photo's predictions
(or the query item's stored ``attr_prob``), :mod:`engine.search.attribute_rerank`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
from PIL import Image

from engine.bundle import CatalogFitCheck
from engine.documents import slug
from engine.errors import InvalidInput, NotFound
from engine.queries import (
    BINARY_FIELD,
    JOINT_FIELD,
    Filters,
    Source,
    coarse_image_search_body,
    cosine_from_score,
    image_search_body,
    vector_search_body,
)
from engine.result_fields import PROBS, hit_source
from engine.search.attribute_rerank import (
    RERANK_ATTRIBUTES,
    AttrDist,
    AttributeRerank,
    neighbour_distribution,
    own_fields,
    rerank,
)
from engine.search.category import CategoryPrediction, predict_category
from engine.search.schemas import CategoryInfo, HitExplain, LocatedObject, SearchResponse
from engine.search.stages import (
    SearchContext,
    elapsed_ms,
    predicted_category,
    same_label,
    to_hit,
)

JSON = dict[str, Any]

# what the category vote and the catalog attribute re-rank read from the vote's neighbours
VOTE_FIELDS: tuple[str, ...] = tuple(dict.fromkeys(("article_type", *RERANK_ATTRIBUTES)))
# the parts of a candidate's attribute probabilities the re-rank reads
RERANK_PROBS: tuple[str, ...] = tuple(f"{PROBS}.{a}" for a in RERANK_ATTRIBUTES)


def attribute_rerank(
    raw: list[JSON], query: AttrDist, rr: AttributeRerank, *, own: bool = False
) -> tuple[list[JSON], dict[str, float]]:
    """Hits re-scored by :func:`engine.search.attribute_rerank.rerank`; each keeps its k-NN
    score under ``_knn_score`` and gets ``_score`` = cosine x factor. ``own``: documents are
    described by their own catalog fields, not the model's ``attr_prob``."""
    by_id = {str(h["_id"]): h for h in raw}
    scored = rerank(
        [
            (
                str(h["_id"]),
                cosine_from_score(h["_score"]),
                own_fields(hit_source(h)) if own else hit_source(h).get(PROBS),
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


def unsigned(code: Sequence[int]) -> np.ndarray:
    return np.asarray([int(b) & 0xFF for b in code], dtype=np.uint8)


def hamming(a: np.ndarray, b: np.ndarray) -> int:
    return int(np.unpackbits(np.bitwise_xor(a, b)).sum())


class ImageSearch:
    """Vector queries on the image field of ``ctx.index``; ``fit_check`` says whether the
    model's category classifier knows this catalog (else the vote alone decides)."""

    def __init__(self, ctx: SearchContext, fit_check: CatalogFitCheck) -> None:
        self.ctx = ctx
        self.fit_check = fit_check

    def predict_category(
        self,
        vector: np.ndarray,
        filters: Filters = Filters(),
        *,
        size: int = 0,
        result_fields: bool = True,
        photo: Any = None,
    ) -> tuple[CategoryPrediction, list[JSON]]:
        """Fused category of a query vector, and the unrestricted neighbours fetched for the
        vote (``max(vote_k, size)`` of them, with result fields: reusable as results).
        ``result_fields=False``: only ``vote_k`` neighbours with the fields the vote and the
        catalog re-rank read (:data:`VOTE_FIELDS`), for callers that never show them.
        ``photo``: the upload's :class:`engine.models.shopper.Located`; when it carries the
        shopper type head's distribution (a photo that is not a studio shot), that is the
        classifier side, with the shopper model's own alpha and threshold."""
        opts = self.ctx.options
        n = max(opts.vote_k, size if result_fields else 0, 1)
        source = self.ctx.as_stored(Source() if result_fields else Source(includes=VOTE_FIELDS))
        body = vector_search_body(opts.image_field, vector, filters, k=n, size=n, source=source)
        neighbours = self.ctx.search(body)
        votes = [
            (hit_source(h).get("article_type"), cosine_from_score(h["_score"]))
            for h in neighbours[: opts.vote_k]
        ]
        fitted = self.fit_check.fitted()
        shopper_types = getattr(photo, "types", None) if fitted else None
        if shopper_types:
            classifier = dict(shopper_types)
        else:
            classifier = self.ctx.encoder.classifier_probs(vector) if fitted else {}
        # a fitted bundle carries the fusion weight chosen on its catalog's validation photos
        config = getattr(self.ctx.encoder.model, "config", None)
        alpha = opts.category_alpha
        threshold = opts.category_threshold
        if isinstance(config, dict) and "category_alpha" in config:
            alpha = float(config["category_alpha"])
        if shopper_types:  # chosen on validation shopper photos
            alpha = photo.category_alpha if photo.category_alpha is not None else alpha
            if photo.category_threshold is not None:
                threshold = photo.category_threshold
        pred = predict_category(classifier, votes, alpha=alpha, threshold=threshold)
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
        encoder = self.ctx.encoder
        located = None
        if self.ctx.options.attribute_rerank is not None:
            vec, query_attrs, located = encoder.embed_photo(image)
        else:
            vec, query_attrs = encoder.embed_image(image), None
        response = self._vector_search(
            vec,
            filters,
            size=size,
            category=category,
            coarse=coarse,
            explain=explain,
            t0=t0,
            query_attrs=query_attrs,
            photo=located,
        )
        if explain and located is not None:
            response.located = LocatedObject(box=located.box, source=located.source)
        return response

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
        ctx = self.ctx
        want = [ctx.options.image_field, JOINT_FIELD, "article_type", *fields]
        try:
            src = ctx.backend.get_source(ctx.index, item_id, list(dict.fromkeys(want)))
        except NotFound:
            raise NotFound(f"no product with id {item_id!r}", item_id=item_id) from None
        vec = src.get(ctx.options.image_field) or src.get(JOINT_FIELD)
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
        code = unsigned(src[BINARY_FIELD]) if src.get(BINARY_FIELD) else None
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
        reuse: bool = True,
        photo: Any = None,
    ) -> tuple[CategoryInfo, str | None, list[JSON] | None]:
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
        pred, neighbours = self.predict_category(
            vec, filters, size=size, result_fields=reuse, photo=photo
        )
        return predicted_category(pred), (pred.label if pred.restrict else None), neighbours

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
        photo: Any = None,
    ) -> SearchResponse:
        ctx, quality, opts = self.ctx, self.ctx.quality, self.ctx.options
        use_coarse = opts.coarse if coarse is None else coarse
        rr = opts.attribute_rerank if query_attrs else None
        blend = quality.blend()
        # the vote's neighbours can stand in for the results only in the plain k-NN case below
        reuse = not use_coarse and rr is None and blend is None
        info, restrict_to, neighbours = self._category_step(
            vec, filters, size, category, item_category, reuse, photo
        )
        extra: tuple[str, ...] = (BINARY_FIELD,) if (explain and use_coarse) else ()
        final_size = size
        size = quality.fetch(size, blend)
        if rr is not None:
            extra = (*extra, *RERANK_PROBS)
            size = max(size, rr.depth)
        source = ctx.source(blend, extra)
        qcode: np.ndarray | None = None
        if use_coarse:
            qcode = code if code is not None else ctx.encoder.codes(vec)
            body = coarse_image_search_body(
                qcode,
                vec,
                filters,
                category=restrict_to,
                coarse_k=opts.coarse_k,
                size=size,
                source=source,
                field_name=opts.image_field,
            )
            strategy = "hamming-coarse+exact-rerank"
            raw = ctx.search(body)
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
                k=opts.knn_k,
                size=size,
                source=source,
                field_name=opts.image_field,
            )
            strategy = "knn-category" if restrict_to else "knn"
            raw = ctx.search(body)
        factors: dict[str, float] = {}
        if rr is not None and query_attrs:  # (rr is set only with query_attrs)
            if self.fit_check.fitted():
                raw, factors = attribute_rerank(raw, query_attrs, rr)
                strategy += "+attribute-rerank"
            else:
                # the model's labels are not this catalog's: the query's colour and type are
                # the vote of its nearest documents' own fields, documents' are their own
                near = neighbours if neighbours else raw
                votes = neighbour_distribution(
                    [(hit_source(h), cosine_from_score(h["_score"])) for h in near[: opts.vote_k]]
                )
                raw, factors = attribute_rerank(raw, votes, rr, own=True)
                strategy += "+catalog-attribute-rerank"
        raw, tag = quality.apply(
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
                src = hit_source(h)
                ham = None
                if qcode is not None and src.get(BINARY_FIELD):
                    ham = hamming(qcode, unsigned(src[BINARY_FIELD]))
                ex = HitExplain(
                    vector=cosine_from_score(h.get("_knn_score", h["_score"])),
                    category=src.get("article_type"),
                    category_match=same_label(src.get("article_type"), info.label)
                    if info.label
                    else None,
                    hamming=ham,
                    attribute_factor=factors.get(str(h["_id"])),
                )
            hits.append(to_hit(h, ex))
        return SearchResponse(
            type="image", strategy=strategy, took_ms=elapsed_ms(t0), hits=hits, category=info
        )
