"""``POST /admin/preview``: one query ranked twice, with the live tuning and with a candidate
tuning (hybrid weights, hybrid depth, LTR blend), for the merchandiser page to compare before
saving through ``PUT /admin/weights``.

Needs the admin key (``X-API-Key``, like every ``/admin`` route): a candidate may ask for deep
hybrid lists, which cost the cluster more than a shopper's query. Nothing is saved. The query is
words (``query``), a catalog item (``item_id``) or a photo (``base64``); the hybrid weights and
depth only change word queries, the blend changes every kind.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    field_validator,
    model_validator,
)
from starlette.concurrency import run_in_threadpool

from engine.api.deps import SearchDep, SettingsDep, TuningDep
from engine.api.errors import error_responses
from engine.api.routers.admin import AdminDep
from engine.hybrid import HybridWeights, integral, normalise_relative
from engine.search.inputs import image_from_base64
from engine.search.quality import QualityRerank
from engine.search.schemas import MAX_TEXT, NOT_BLANK, FilterSpec, SearchResponse
from engine.search.service import SearchService
from engine.tuning.weights import BlendPatch, BlendSettings, TuningView

router = APIRouter(prefix="/admin", tags=["admin"])

MAX_PREVIEW_SIZE = 50
MAX_PREVIEW_DEPTH = 1000


class CandidateTuning(BaseModel):
    """The tuning to preview; a part left out is the live one."""

    model_config = ConfigDict(extra="forbid")

    hybrid: HybridWeights | None = Field(
        default=None, description="relative BM25 / vector weights (each 0-1000, not both 0)"
    )
    hybrid_depth: Annotated[
        int | None, Field(ge=0, le=MAX_PREVIEW_DEPTH), BeforeValidator(integral)
    ] = Field(
        default=None,
        description="hits of each hybrid sub-query combined (0: page-deep; default: live)",
    )
    rerank: BlendPatch | None = None

    @field_validator("hybrid", mode="before")
    @classmethod
    def _relative(cls, v: Any) -> Any:
        return normalise_relative(v)


PREVIEW_SOURCES = ("query", "item_id", "base64")


class PreviewRequest(BaseModel):
    """Exactly one of ``query``, ``item_id`` or ``base64``; the schema says so with ``oneOf``
    (a null field counts as not given)."""

    model_config = ConfigDict(
        extra="forbid",
        strict=True,
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in PREVIEW_SOURCES
            ]
        },
    )

    query: str | None = Field(
        default=None, min_length=1, max_length=MAX_TEXT, pattern=NOT_BLANK, examples=["black jeans"]
    )
    item_id: str | None = Field(default=None, min_length=1, max_length=256)
    base64: str | None = Field(
        default=None, min_length=1, description="a photo, base64 (data: URLs ok)"
    )
    filters: FilterSpec = Field(default_factory=FilterSpec)
    size: Annotated[int, Field(ge=1, le=MAX_PREVIEW_SIZE), BeforeValidator(integral)] = 20
    explain: bool = Field(default=True, description="per-stage score breakdown per hit")
    candidate: CandidateTuning = Field(default_factory=CandidateTuning)

    @model_validator(mode="after")
    def _one_query(self) -> PreviewRequest:
        given = [n for n in PREVIEW_SOURCES if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of query, item_id or base64")
        if self.query is not None:
            self.query = self.query.strip()
        return self


class AppliedTuning(BaseModel):
    weights: HybridWeights | None = Field(description="hybrid weights (null: the pipeline's)")
    hybrid_depth: int | None = Field(description="null: page-deep")
    blend: BlendSettings


class PreviewResponse(BaseModel):
    live: SearchResponse
    candidate: SearchResponse
    live_tuning: TuningView
    candidate_tuning: AppliedTuning


def _run(svc: SearchService, req: PreviewRequest, weights: HybridWeights | None, image: Any):
    f = req.filters.to_filters()
    if req.query is not None:
        return svc.text_search(
            req.query,
            f,
            size=req.size,
            weights=weights.as_tuple() if weights else None,
            explain=req.explain,
        )
    if req.item_id is not None:
        return svc.similar_to_item(req.item_id, f, size=req.size, explain=req.explain)
    return svc.image_search(image, f, size=req.size, explain=req.explain)


@router.post(
    "/preview",
    response_model=PreviewResponse,
    summary="Rank one query with the live and with a candidate tuning (nothing is saved)",
    responses=error_responses(
        {401: "missing or wrong X-API-Key", 404: "unknown item", 503: "admin API disabled"}
    ),
)
async def preview(
    body: PreviewRequest,
    actor: AdminDep,
    svc: SearchDep,
    store: TuningDep,
    settings: SettingsDep,
) -> PreviewResponse:
    def work() -> PreviewResponse:
        live_view = store.current()
        cand = body.candidate
        blend = cand.rerank.apply_to(live_view.blend) if cand.rerank else live_view.blend
        live_depth = svc.options.hybrid_depth
        depth = live_depth if cand.hybrid_depth is None else (cand.hybrid_depth or None)
        rerank = blend.to_blend()
        model_path = svc.quality.model_path if svc.quality is not None else None
        variant = svc.variant(
            hybrid_depth=depth, quality=QualityRerank(lambda: rerank, model_path=model_path)
        )
        image = image_from_base64(body.base64, settings.api) if body.base64 else None
        weights = cand.hybrid or live_view.weights
        return PreviewResponse(
            live=_run(svc, body, None, image),
            candidate=_run(variant, body, weights, image),
            live_tuning=live_view,
            candidate_tuning=AppliedTuning(weights=weights, hybrid_depth=depth, blend=blend),
        )

    return await run_in_threadpool(work)
