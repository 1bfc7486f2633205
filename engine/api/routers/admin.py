"""Merchandiser admin API: hybrid weights and the re-rank blend (versioned, with rollback).

Every route needs the header ``X-API-Key`` equal to ``settings.api.admin_api_key``
(``OUTFIT_API__ADMIN_API_KEY``), compared in constant time: missing or wrong -> 401; no key
configured -> 503 (the admin API is off). Invalid values -> 422 with the one error body
``{code, message, details}``. Every change of the weights is recorded in the history with the
key id as actor and logged as one audit line (:mod:`engine.api.audit`).
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Security
from fastapi.security import APIKeyHeader
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator

from engine.api.audit import audit, key_id
from engine.api.deps import SettingsDep, TuningDep
from engine.api.errors import error_responses
from engine.errors import AdminDisabled, Unauthorized
from engine.hybrid import integral
from engine.tuning.weights import (
    BlendPatch,
    HybridWeights,
    TuningVersion,
    TuningView,
)

# documented as the security scheme of the admin operations (auto_error off: our own errors)
API_KEY_HEADER = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="the admin API key (OUTFIT_API__ADMIN_API_KEY)"
)


def require_admin(
    settings: SettingsDep,
    x_api_key: Annotated[str | None, Security(API_KEY_HEADER)] = None,
) -> str:
    """Check ``X-API-Key`` in constant time; returns the actor recorded in the history and the
    audit log: the key's id (never the key)."""
    configured = settings.api.admin_api_key
    if configured is None or not configured.get_secret_value():
        raise AdminDisabled(
            "admin API disabled: no admin API key is configured (set OUTFIT_API__ADMIN_API_KEY)"
        )
    if x_api_key is None:
        raise Unauthorized("missing X-API-Key header")
    if not secrets.compare_digest(x_api_key.encode(), configured.get_secret_value().encode()):
        raise Unauthorized("invalid X-API-Key")
    return key_id(configured.get_secret_value())


AdminDep = Annotated[str, Depends(require_admin)]

router = APIRouter(
    prefix="/admin",
    tags=["admin"],
    responses=error_responses(
        {
            401: "missing or wrong X-API-Key",
            409: "a concurrent change won, or nothing to roll back to",
            503: "admin API disabled",
        }
    ),
)


class WeightsUpdate(BaseModel):
    """``hybrid`` (both weights, summing to 1) and/or ``rerank`` (any blend fields)."""

    model_config = ConfigDict(
        extra="forbid",
        # what the validator below enforces (a null field counts as not given)
        json_schema_extra={
            "anyOf": [
                {"required": [name], "properties": {name: {"type": "object"}}}
                for name in ("hybrid", "rerank")
            ]
        },
    )

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

    # strict: a JSON integer (426.0 too), not a string or a boolean
    version: Annotated[int, Field(ge=1, strict=True), BeforeValidator(integral)] | None = Field(
        default=None, description="default: the one before newest"
    )
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
    before = store.current()
    version = store.update(body.hybrid, body.rerank, actor=actor, comment=body.comment)
    _audit("weights.update", actor, before, version)
    return version


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
    before = store.current()
    version = store.rollback(req.version, actor=actor, comment=req.comment)
    _audit("weights.rollback", actor, before, version)
    return version


def _audit(event: str, actor: str, before: TuningView, after: TuningVersion) -> None:
    audit(
        event,
        actor=actor,
        version=after.version,
        rolled_back_to=after.rolled_back_to,
        comment=after.comment,
        old={
            "version": before.version,
            "weights": before.weights.model_dump(),
            "blend": before.blend.model_dump(),
        },
        new={"weights": after.weights.model_dump(), "blend": after.blend.model_dump()},
    )
