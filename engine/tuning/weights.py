"""Read, validate, version and apply the hybrid weights and the re-rank blend.

Where things live
    * The hybrid weights are the ``normalization-processor`` combination weights
      ``[bm25, vector]`` of the installed search pipeline ``settings.cluster.hybrid_pipeline``
      (the products index's default pipeline): changing them there takes effect on the next
      query, no restart. A tuned pipeline carries ``[outfit_tuned_weights=vN]`` in its
      description so ``python -m engine.config apply`` keeps the weights (unless
      ``--reset-weights``), see :func:`preserve_tuned_weights`.
    * Every change is a new, immutable version document in the ``<prefix>-settings`` index
      (weights + blend + who/when/why); the newest version's blend is the live blend, which the
      search service reads through :meth:`TuningStore.blend` (cached ``blend_ttl_s`` seconds).
      Version numbers are allocated with create-only writes, so two concurrent writers cannot
      both create version N (the loser gets :class:`~engine.errors.Conflict`).
    * ``rollback`` re-applies an older version's values as a new version (history is append-only).
"""

from __future__ import annotations

import copy
import logging
import re
import threading
import time
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from engine.backend import Backend
from engine.errors import (
    ClusterRequestError,
    ConfigError,
    Conflict,
    EngineError,
    InvalidInput,
    NotFound,
)
from engine.hybrid import SUM_TOLERANCE as SUM_TOLERANCE
from engine.hybrid import WEIGHT_NAMES as WEIGHT_NAMES
from engine.hybrid import HybridWeights as HybridWeights
from engine.hybrid import integral, normalization_processor
from engine.hybrid import pipeline_weights as pipeline_weights
from engine.ltr.rerank import DEFAULT_LTR_WEIGHT, DEFAULT_TOP_N, MAX_TOP_N, RerankBlend
from engine.settings import ClusterSettings

logger = logging.getLogger(__name__)

TUNED_MARK = "outfit_tuned_weights"
_TUNED_RE = re.compile(r"\s*\[" + TUNED_MARK + r"=[^\]]*\]")
KIND = "tuning"
DEFAULT_BLEND_TTL_S = 10.0

Action = Literal["baseline", "observed", "set", "rollback"]


# --------------------------------------------------------------------------- validated values


class BlendSettings(BaseModel):
    """The LTR re-rank blend a merchandiser tunes (see :class:`engine.ltr.rerank.RerankBlend`)."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ltr_weight: float = Field(
        default=DEFAULT_LTR_WEIGHT,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="share of the LTR score in the blended score (0 = original order)",
    )
    top_n: int = Field(default=DEFAULT_TOP_N, ge=1, le=MAX_TOP_N)
    enabled: bool = True

    def to_blend(self) -> RerankBlend:
        return RerankBlend(self.ltr_weight, self.top_n, self.enabled)


class BlendPatch(BaseModel):
    """A partial blend change: fields left out keep their current value."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    ltr_weight: float | None = Field(default=None, ge=0.0, le=1.0, allow_inf_nan=False)
    top_n: Annotated[int, Field(ge=1, le=MAX_TOP_N), BeforeValidator(integral)] | None = None
    enabled: bool | None = None

    def apply_to(self, blend: BlendSettings) -> BlendSettings:
        return blend.model_copy(update=self.model_dump(exclude_none=True))


class TuningVersion(BaseModel):
    """One immutable version of the tuning (stored in the ``<prefix>-settings`` index)."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    version: int = Field(ge=1)
    weights: HybridWeights
    blend: BlendSettings
    action: Action
    rolled_back_to: int | None = None
    updated_at: float
    actor: str | None = None
    comment: str | None = None


class TuningView(BaseModel):
    """What is live now: the pipeline's weights and the newest version's blend."""

    pipeline: str
    weights: HybridWeights
    blend: BlendSettings
    version: int = Field(description="newest recorded version (0: never tuned)")
    tuned: bool = Field(description="the pipeline carries tuned weights")
    in_sync: bool = Field(description="the pipeline's weights are the newest version's")
    updated_at: float | None = None


def validation_error(exc: ValidationError, what: str) -> InvalidInput:
    """A pydantic error as our InvalidInput (first problem in the message, all in details)."""
    errs = [
        {"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", ""), "type": e.get("type")}
        for e in exc.errors()
    ]
    first = errs[0] if errs else {"loc": [], "msg": "invalid"}
    where = ".".join(first["loc"])
    return InvalidInput(f"{what}: {where + ': ' if where else ''}{first['msg']}", errors=errs)


def parse_weights(values: Mapping[str, Any]) -> HybridWeights:
    try:
        return HybridWeights.model_validate(dict(values))
    except ValidationError as exc:
        raise validation_error(exc, "invalid hybrid weights") from exc


def parse_blend_patch(values: Mapping[str, Any]) -> BlendPatch:
    try:
        return BlendPatch.model_validate(dict(values))
    except ValidationError as exc:
        raise validation_error(exc, "invalid re-rank blend") from exc


# --------------------------------------------------------------------------- pipeline bodies


def tuned_version(body: Mapping[str, Any]) -> str | None:
    """The tuning marker's value (``vN``) when the pipeline was tuned, else None."""
    m = re.search(r"\[" + TUNED_MARK + r"=([^\]]*)\]", str(body.get("description", "")))
    return m.group(1) if m else None


def is_tuned(body: Mapping[str, Any] | None) -> bool:
    return body is not None and tuned_version(body) is not None


def with_weights(body: Mapping[str, Any], weights: HybridWeights, version: int) -> dict[str, Any]:
    """A copy of the pipeline body with new weights and the tuned marker ``vN``."""
    out = copy.deepcopy(dict(body))
    norm = normalization_processor(out)
    comb = norm.setdefault("combination", {"technique": "arithmetic_mean"})
    comb.setdefault("parameters", {})["weights"] = weights.as_list()
    desc = _TUNED_RE.sub("", str(out.get("description", ""))).strip()
    out["description"] = f"{desc} [{TUNED_MARK}=v{version}]".strip()
    return out


def preserve_tuned_weights(
    current: Mapping[str, Any], new_body: Mapping[str, Any]
) -> dict[str, Any]:
    """For the config installer: ``new_body`` with the tuned weights and marker of ``current``.

    When the new pipeline's weights cannot take the old ones (different number of sub-queries
    or no normalization processor) the new body is returned unchanged and a warning logged.
    """
    out = copy.deepcopy(dict(new_body))
    marker = tuned_version(current)
    if marker is None:
        return out
    try:
        old = pipeline_weights(current)
        normalization_processor(out)
        pipeline_weights(out)
    except ConfigError as exc:
        logger.warning("cannot keep the tuned hybrid weights (%s): installing the defaults", exc)
        return out
    out = with_weights(out, old, 0)
    out["description"] = _TUNED_RE.sub("", out["description"]).strip() + f" [{TUNED_MARK}={marker}]"
    return out


# --------------------------------------------------------------------------- the store


def settings_index(cluster: ClusterSettings) -> str:
    return f"{cluster.index_prefix}-settings"


SETTINGS_INDEX_BODY: dict[str, Any] = {
    "settings": {"index": {"number_of_shards": 1, "auto_expand_replicas": "0-1"}},
    "mappings": {
        "dynamic": False,
        "properties": {
            "kind": {"type": "keyword"},
            "version": {"type": "long"},
            "action": {"type": "keyword"},
            "updated_at": {"type": "double"},
        },
    },
}


class TuningStore:
    """Versioned tuning in the cluster; see the module docstring."""

    def __init__(
        self,
        backend: Backend,
        cluster: ClusterSettings,
        *,
        blend_ttl_s: float = DEFAULT_BLEND_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.backend = backend
        self.index = settings_index(cluster)
        self.pipeline = cluster.hybrid_pipeline
        self.blend_ttl_s = blend_ttl_s
        self._clock = clock
        self._wall = wall_clock
        self._lock = threading.Lock()
        self._cached: tuple[float, RerankBlend] | None = None

    # ------------------------------------------------------------------ reads
    def _pipeline_body(self) -> dict[str, Any]:
        body = self.backend.get_search_pipeline(self.pipeline)
        if body is None:
            raise NotFound(
                f"search pipeline {self.pipeline} is not installed "
                "(run `python -m engine.config apply`)",
                pipeline=self.pipeline,
            )
        return body

    def history(self, limit: int = 50) -> list[TuningVersion]:
        """Versions, newest first (empty when never tuned)."""
        if limit < 1:
            raise InvalidInput("limit must be >= 1", limit=limit)
        body = {
            "size": limit,
            "query": {"term": {"kind": KIND}},
            "sort": [{"version": {"order": "desc"}}],
        }
        try:
            res = self.backend.search(self.index, body)
        except NotFound:
            return []
        try:
            return [TuningVersion.model_validate(h["_source"]) for h in res["hits"]["hits"]]
        except (ValidationError, KeyError, TypeError) as exc:
            raise ConfigError(
                f"malformed tuning version in {self.index}: {exc}", index=self.index
            ) from exc

    def latest(self) -> TuningVersion | None:
        items = self.history(limit=1)
        return items[0] if items else None

    def get_version(self, version: int) -> TuningVersion:
        try:
            src = self.backend.get(self.index, _doc_id(version))
        except NotFound as exc:
            raise NotFound(f"no tuning version {version}", version=version) from exc
        return TuningVersion.model_validate(src)

    def current(self) -> TuningView:
        body = self._pipeline_body()
        weights = pipeline_weights(body)
        latest = self.latest()
        return TuningView(
            pipeline=self.pipeline,
            weights=weights,
            blend=latest.blend if latest else BlendSettings(),
            version=latest.version if latest else 0,
            tuned=is_tuned(body),
            in_sync=latest is None or latest.weights.close_to(weights),
            updated_at=latest.updated_at if latest else None,
        )

    def blend(self) -> RerankBlend:
        """The live blend, re-read at most every ``blend_ttl_s`` seconds; on a cluster error the
        last known (or default) blend."""
        now = self._clock()
        cached = self._cached
        if cached is not None and now - cached[0] < self.blend_ttl_s:
            return cached[1]
        with self._lock:
            cached = self._cached
            if cached is not None and now - cached[0] < self.blend_ttl_s:
                return cached[1]
            try:
                latest = self.latest()
                value = latest.blend.to_blend() if latest else RerankBlend()
            except EngineError as exc:
                logger.warning("re-rank blend unavailable (%s); using the last known", exc)
                value = cached[1] if cached else RerankBlend()
            self._cached = (now, value)
            return value

    def invalidate(self) -> None:
        self._cached = None

    # ------------------------------------------------------------------ writes
    def _ensure_index(self) -> None:
        if self.backend.index_exists(self.index):
            return
        try:
            self.backend.create_index(self.index, SETTINGS_INDEX_BODY)
        except ClusterRequestError as exc:
            if "resource_already_exists" not in str(exc.details.get("reason", "")):
                raise

    def _write(self, version: TuningVersion) -> None:
        doc = {"kind": KIND, **version.model_dump(mode="json")}
        try:
            self.backend.create_doc(self.index, _doc_id(version.version), doc, refresh=True)
        except ClusterRequestError as exc:
            if exc.details.get("status") == 409:
                raise Conflict(
                    f"tuning version {version.version} was written concurrently; retry",
                    version=version.version,
                ) from exc
            raise

    def update(
        self,
        weights: HybridWeights | None = None,
        blend: BlendPatch | BlendSettings | None = None,
        *,
        actor: str | None = None,
        comment: str | None = None,
        action: Action = "set",
        rolled_back_to: int | None = None,
    ) -> TuningVersion:
        """Record a new version and apply it (pipeline weights now; blend within the TTL)."""
        if weights is None and blend is None:
            raise InvalidInput("nothing to change: give weights and/or a blend")
        body = self._pipeline_body()
        live = pipeline_weights(body)
        self._ensure_index()
        latest = self.latest()
        now = self._wall()
        if latest is None or not latest.weights.close_to(live):
            # keep what was live before this change, so it can be rolled back to
            latest = TuningVersion(
                version=(latest.version + 1) if latest else 1,
                weights=live,
                blend=latest.blend if latest else BlendSettings(),
                action="observed" if latest else "baseline",
                updated_at=now,
                actor=actor,
                comment="weights found in the pipeline before this change",
            )
            self._write(latest)
        if isinstance(blend, BlendPatch):
            new_blend = blend.apply_to(latest.blend)
        else:
            new_blend = blend if blend is not None else latest.blend
        new = TuningVersion(
            version=latest.version + 1,
            weights=weights if weights is not None else live,
            blend=new_blend,
            action=action,
            rolled_back_to=rolled_back_to,
            updated_at=now,
            actor=actor,
            comment=comment,
        )
        self._write(new)
        if weights is not None:
            try:
                self.backend.put_search_pipeline(
                    self.pipeline, with_weights(body, weights, new.version)
                )
            except EngineError:
                self.backend.delete_doc(self.index, _doc_id(new.version))
                raise
        self.invalidate()
        logger.info(
            "tuning v%d (%s): weights=%s blend=%s",
            new.version,
            action,
            new.weights.as_list(),
            new.blend.model_dump(),
        )
        return new

    def rollback(
        self, to_version: int | None = None, *, actor: str | None = None, comment: str | None = None
    ) -> TuningVersion:
        """Re-apply ``to_version`` (default: the version before the newest) as a new version."""
        if to_version is None:
            items = self.history(limit=2)
            if len(items) < 2:
                # the tuning's state, not the request, is in the way: 409
                raise Conflict("nothing to roll back to: fewer than two versions recorded")
            target = items[1]
        else:
            target = self.get_version(to_version)
            latest = self.latest()
            if latest is not None and latest.version == target.version:
                raise Conflict(f"version {to_version} is already the newest", version=to_version)
        return self.update(
            target.weights,
            target.blend,
            actor=actor,
            comment=comment or f"rollback to v{target.version}",
            action="rollback",
            rolled_back_to=target.version,
        )


def _doc_id(version: int) -> str:
    return f"{KIND}-{version:010d}"
