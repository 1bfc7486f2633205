"""Stages every search path shares: how many hits to fetch, the quality re-rank, the category
step's summary, and mapping OpenSearch hits to :class:`~engine.search.schemas.Hit`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from engine.backend import Backend
from engine.image_links import image_links
from engine.ltr.rerank import RerankBlend
from engine.queries import Source
from engine.result_fields import hit_source
from engine.search.category import CategoryPrediction
from engine.search.options import SearchOptions
from engine.search.quality import LTR_DOC_FIELDS, QualityRerank, Signals
from engine.search.query_encoder import QueryEncoder
from engine.search.schemas import CategoryInfo, Hit, HitExplain

NO_PIPELINE = "_none"  # skip the index's default search pipeline (non-hybrid queries)

JSON = dict[str, Any]


@dataclass(frozen=True)
class QualityStage:
    """The quality re-rank (:mod:`engine.search.quality`) as the search paths use it: the live
    blend, the fetch size and ``_source`` it needs, and the re-rank of the retrieved hits."""

    quality: QualityRerank | None = None

    def blend(self) -> RerankBlend | None:
        """The live LTR blend when the quality stage will re-rank, else None."""
        return self.quality.live() if self.quality is not None else None

    @staticmethod
    def fetch(size: int, blend: RerankBlend | None) -> int:
        """How many hits to retrieve so the quality stage sees its ``top_n`` candidates."""
        return max(size, blend.top_n) if blend is not None else size

    @staticmethod
    def source(blend: RerankBlend | None, extra: tuple[str, ...] = ()) -> Source:
        return Source(extra=(*extra, *LTR_DOC_FIELDS) if blend is not None else extra)

    def apply(
        self,
        raw: list[JSON],
        blend: RerankBlend | None,
        size: int,
        signals: Signals | None = None,
    ) -> tuple[list[JSON], str]:
        """The first ``size`` hits after the quality re-rank, and the strategy suffix."""
        if blend is None or self.quality is None:
            return raw[:size], ""
        out, ran = self.quality.apply(raw, blend, signals)
        return out[:size], "+ltr" if ran else ""


@dataclass(frozen=True)
class SearchContext:
    """What the text, image and compose paths share: one products index and its cluster, the
    options, the query encoder and the quality stage."""

    backend: Backend
    index: str
    options: SearchOptions
    encoder: QueryEncoder
    quality: QualityStage
    # does the index store the result fields? (engine.result_fields.StoredResultsCheck)
    stored: Callable[[], bool] = lambda: False
    # does it store the attribute probabilities too?
    stored_probabilities: Callable[[], bool] = lambda: False

    def source(self, blend: RerankBlend | None, extra: tuple[str, ...] = ()) -> Source:
        """What the hits of a query return: the result fields, the LTR stage's fields when it
        runs, and ``extra``; as stored fields when the index stores them all."""
        return self.as_stored(self.quality.source(blend, extra))

    def as_stored(self, source: Source) -> Source:
        """``source`` read as stored fields where this index stores them all."""
        return replace(
            source, stored=self.stored(), stored_probabilities=self.stored_probabilities()
        )

    def search(self, body: JSON) -> list[JSON]:
        """The hits of a non-hybrid query (the index's default pipeline skipped)."""
        return hits_of(self.backend.search(self.index, body, search_pipeline=NO_PIPELINE))


def elapsed_ms(t0: float) -> float:
    return round((time.perf_counter() - t0) * 1000.0, 3)


def hits_of(res: JSON) -> list[JSON]:
    """A response's hits, each with its document fields under ``_source`` however they were
    fetched: stored fields are read back once here (:func:`hit_source`), so the re-ranks and
    :func:`to_hit` that read a hit again do not parse them again."""
    out = []
    for h in res.get("hits", {}).get("hits", []):
        if isinstance(h, dict) and "fields" in h:
            h = {k: v for k, v in h.items() if k != "fields"} | {"_source": hit_source(h)}
        out.append(h)
    return out


def to_hit(h: JSON, explain: HitExplain | None = None) -> Hit:
    src = hit_source(h)
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
        image_urls=image_links(str(h["_id"]), src),
        slot=src.get("slot"),
        explain=explain,
    )


def predicted_category(pred: CategoryPrediction) -> CategoryInfo:
    """The response's category block for a fused category prediction."""
    return CategoryInfo(
        label=pred.label,
        confidence=round(pred.confidence, 6),
        restricted=pred.restrict,
        source="predicted",
        fused=pred.fused,
        classifier=pred.classifier,
        vote=pred.vote,
    )


def same_label(a: str | None, b: str | None) -> bool:
    return a is not None and b is not None and a.strip().lower() == b.strip().lower()
