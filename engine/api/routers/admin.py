"""Merchandiser admin API: hybrid weights and the re-rank blend (versioned, with rollback).

Every route needs the header ``X-API-Key`` equal to ``settings.api.admin_api_key``
(``OUTFIT_API__ADMIN_API_KEY``): missing or wrong -> 401; no key configured -> 503 (the admin
API is off). Invalid values -> 422 with the one error body ``{code, message, details}``.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query
from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.api.deps import SettingsDep, TuningDep
from engine.errors import AdminDisabled, Unauthorized
from engine.tuning.weights import (
    BlendPatch,
    HybridWeights,
    TuningVersion,
    TuningView,
)


def require_admin(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Header(alias="X-API-Key")] = None,
) -> str:
    """Check ``X-API-Key`` in constant time; returns the actor name recorded in history."""
    configured = settings.api.admin_api_key
    if configured is None or not configured.get_secret_value():
        raise AdminDisabled(
            "admin API disabled: no admin API key is configured (set OUTFIT_API__ADMIN_API_KEY)"
        )
    if x_api_key is None:
        raise Unauthorized("missing X-API-Key header")
    if not secrets.compare_digest(x_api_key.encode(), configured.get_secret_value().encode()):
        raise Unauthorized("invalid X-API-Key")
    return "admin-api"


AdminDep = Annotated[str, Depends(require_admin)]

router = APIRouter(prefix="/admin", tags=["admin"])


class WeightsUpdate(BaseModel):
    """``hybrid`` (both weights, summing to 1) and/or ``rerank`` (any blend fields)."""

    model_config = ConfigDict(extra="forbid")

    hybrid: HybridWeights | None = None
    rerank: BlendPatch | None = None
    comment: str | None = Field(default=None, max_length=500)

    @model_validator(mode="after")
    def _something(self) -> WeightsUpdate:
        if self.hybrid is None and self.rerank is None:
            raise ValueError("give hybrid and/or rerank")
        return self


class RollbackRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int | None = Field(default=None, ge=1, description="default: the one before newest")
    comment: str | None = Field(default=None, max_length=500)


class History(BaseModel):
    versions: list[TuningVersion]


@router.get("/weights", response_model=TuningView)
def get_weights(actor: AdminDep, store: TuningDep) -> Any:
    """What is live: the pipeline's hybrid weights and the re-rank blend."""
    return store.current()


@router.put("/weights", response_model=TuningVersion)
def put_weights(body: WeightsUpdate, actor: AdminDep, store: TuningDep) -> Any:
    """Change the hybrid weights and/or the blend; effective on the next query (blend: within
    the cache TTL). Returns the new version."""
    return store.update(body.hybrid, body.rerank, actor=actor, comment=body.comment)


@router.get("/weights/history", response_model=History)
def weights_history(
    actor: AdminDep, store: TuningDep, limit: Annotated[int, Query(ge=1, le=500)] = 50
) -> Any:
    """Recorded versions, newest first."""
    return History(versions=store.history(limit))


@router.post("/weights/rollback", response_model=TuningVersion)
def rollback_weights(actor: AdminDep, store: TuningDep, body: RollbackRequest | None = None) -> Any:
    """Re-apply an earlier version (default: the one before the newest) as a new version."""
    req = body or RollbackRequest()
    return store.rollback(req.version, actor=actor, comment=req.comment)
