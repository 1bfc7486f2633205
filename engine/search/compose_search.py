"""Query arithmetic ("this but in red"): ``normalize(f_image + w f_text(wanted) - w_neg
f_text(unwanted))`` from a photo, a catalog item or a precomputed image embedding, with a soft
attribute filter (:mod:`engine.search.compose`) and the category restriction of photo search."""

from __future__ import annotations

import time
from collections.abc import Sequence

import numpy as np
from PIL import Image

from engine.errors import InvalidInput
from engine.queries import Filters, SoftFilter, compose_search_body, cosine_from_score
from engine.result_fields import hit_source
from engine.search.compose import (
    AttributeMatch,
    compose_vector,
    flatten_attr_prob,
    parse_modifier,
    soft_factor,
    soft_fields,
)
from engine.search.image_search import ImageSearch
from engine.search.schemas import (
    AttributeValue,
    CategoryInfo,
    HitExplain,
    SearchResponse,
    SoftFilterInfo,
)
from engine.search.stages import SearchContext, elapsed_ms, predicted_category, to_hit


def _attr(m: AttributeMatch) -> AttributeValue:
    return AttributeValue(attribute=m.attribute, value=m.value, phrase=m.phrase, field=m.field)


class ComposeSearch:
    """Composed queries over ``ctx.index``; ``image``: the photo path (item vectors, category)."""

    def __init__(self, ctx: SearchContext, image: ImageSearch) -> None:
        self.ctx = ctx
        self.image = image

    def search(
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
        ctx, quality, opts, encoder = self.ctx, self.ctx.quality, self.ctx.options, self.ctx.encoder
        if sum(x is not None for x in (image, item_id, vector)) != 1:
            raise InvalidInput("give exactly one of image, item_id or vector")
        if item_id is not None:
            vec, _ = self.image.item_vector(item_id)
            filters = filters.excluding([item_id])
        elif vector is not None:
            vec = np.asarray(vector, dtype=np.float32).reshape(-1)
        else:
            assert image is not None
            vec = encoder.embed_image(image)
        modifier = parse_modifier(text).merged(wanted, unwanted)
        w = opts.text_weight if text_weight is None else float(text_weight)
        wn = opts.negative_weight if negative_weight is None else float(negative_weight)
        f_wanted = encoder.embed_text(" ".join(modifier.wanted)) if modifier.wanted else None
        f_unwanted = encoder.embed_text(" ".join(modifier.unwanted)) if modifier.unwanted else None
        q = compose_vector(vec, f_wanted, f_unwanted, text_weight=w, negative_weight=wn)
        want_m: list[AttributeMatch] = []
        avoid_m: list[AttributeMatch] = []
        if soft_filter and not modifier.empty:
            want_m, avoid_m = soft_fields(encoder.lexicon(), modifier)
        soft = SoftFilter(
            tuple(m.field for m in want_m),
            tuple(m.field for m in avoid_m),
            opts.soft_floor,
        )
        info: CategoryInfo | None = None
        restrict_to: str | None = None
        names_type = any(m.attribute == "article_type" for m in want_m)
        if category == "auto" and not names_type and not filters.article_type:
            pred, _ = self.image.predict_category(vec, filters, result_fields=False)
            info = predicted_category(pred)
            restrict_to = pred.label if pred.restrict else None
        f = filters.with_article_type(restrict_to) if restrict_to else filters
        blend = quality.blend()
        body = compose_search_body(
            q,
            soft,
            f,
            k=opts.compose_k,
            size=quality.fetch(size, blend),
            source=ctx.source(blend, ("attr_prob",) if explain else ()),
            field_name=opts.compose_field,
        )
        raw, tag = quality.apply(ctx.search(body), blend, size)
        hits = []
        for h in raw:
            ex = None
            if explain:
                src = hit_source(h)
                probs = flatten_attr_prob(src.get("attr_prob"))
                factor = soft_factor(probs, soft.wanted, soft.unwanted, soft.floor)
                used = {k: probs.get(k, 0.0) for k in (*soft.wanted, *soft.unwanted)}
                ex = HitExplain(
                    vector=cosine_from_score(h["_score"] / factor) if factor > 0 else None,
                    soft_factor=factor,
                    attribute_probs=used or None,
                    category=src.get("article_type"),
                )
            hits.append(to_hit(h, ex))
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
            took_ms=elapsed_ms(t0),
            hits=hits,
            category=info,
            soft_filter=soft_info,
        )
