"""The hybrid score weights ``[bm25, vector]``: one model and one parser of pipeline bodies.

Used by the search service (the installed pipeline's weights, a request's override), the
tuning store (versioned weights, :mod:`engine.tuning.weights`) and the config installer (which
keeps tuned weights). Pure: no I/O.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError, model_validator

from engine.errors import ConfigError

WEIGHT_NAMES: tuple[str, ...] = ("bm25", "vector")  # the hybrid query's sub-query order
SUM_TOLERANCE = 1e-6
MAX_RELATIVE_WEIGHT = 1000.0  # a request's weights are relative: {"bm25": 1, "vector": 3}

# strict: a JSON number (not a string or a boolean), as the request schema says
_RELATIVE: TypeAdapter[float] = TypeAdapter(
    Annotated[float, Field(ge=0, le=MAX_RELATIVE_WEIGHT, strict=True, allow_inf_nan=False)]
)


def integral(v: Any) -> Any:
    """For a ``BeforeValidator`` of a strict int: JSON Schema's integer includes ``426.0``, so
    an integral float becomes an int (strings, booleans and fractions stay rejected)."""
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return v


def relative_weights_schema() -> dict[str, Any]:
    """The JSON schema of a request's relative weights (what :func:`normalise_relative`
    accepts): both, each a number in [0, MAX_RELATIVE_WEIGHT], not both 0."""
    weight = {"type": "number", "minimum": 0, "maximum": MAX_RELATIVE_WEIGHT}
    return {
        "type": "object",
        "properties": {name: dict(weight) for name in WEIGHT_NAMES},
        "required": list(WEIGHT_NAMES),
        "additionalProperties": False,
        "not": {"properties": {name: {"const": 0} for name in WEIGHT_NAMES}},
    }


class HybridWeights(BaseModel):
    """Hybrid score weights: each finite and in [0, 1], summing to 1."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True)

    bm25: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="BM25 sub-query weight")
    vector: float = Field(ge=0.0, le=1.0, allow_inf_nan=False, description="k-NN weight")

    @model_validator(mode="after")
    def _sums_to_one(self) -> HybridWeights:
        total = self.bm25 + self.vector
        if abs(total - 1.0) > SUM_TOLERANCE:
            raise ValueError(f"weights must sum to 1 (got {total:g})")
        return self

    def as_list(self) -> list[float]:
        return [self.bm25, self.vector]

    def as_tuple(self) -> tuple[float, float]:
        return self.bm25, self.vector

    @classmethod
    def from_list(cls, values: Any) -> HybridWeights:
        if not isinstance(values, list) or len(values) != len(WEIGHT_NAMES):
            raise ConfigError(
                f"hybrid pipeline weights must be a list of {len(WEIGHT_NAMES)} numbers "
                f"({', '.join(WEIGHT_NAMES)}), found {values!r}"
            )
        try:
            return cls.model_validate(
                {n: float(v) for n, v in zip(WEIGHT_NAMES, values, strict=True)}, strict=False
            )
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"hybrid pipeline has invalid weights {values!r}: {exc}") from exc

    def close_to(self, other: HybridWeights) -> bool:
        return all(
            math.isclose(a, b, abs_tol=1e-9)
            for a, b in zip(self.as_list(), other.as_list(), strict=True)
        )


def normalise_relative(value: Any) -> Any:
    """A request's relative weights (each in [0, 1000], not both 0) as weights summing to 1.

    For a ``mode="before"`` validator: anything but a mapping is left to the model to reject;
    a bad mapping raises :class:`ValueError`."""
    if not isinstance(value, Mapping):
        return value
    unknown = sorted(set(value) - set(WEIGHT_NAMES))
    if unknown:
        raise ValueError(f"unknown weights {unknown} (expected {', '.join(WEIGHT_NAMES)})")
    missing = [n for n in WEIGHT_NAMES if n not in value]
    if missing:
        raise ValueError(f"missing weights {missing}")
    try:
        raw = {n: _RELATIVE.validate_python(value[n]) for n in WEIGHT_NAMES}
    except ValidationError as exc:
        first = exc.errors()[0].get("msg", "invalid") if exc.errors() else "invalid"
        raise ValueError(f"invalid weight: {first}") from None
    total = sum(raw.values())
    if total <= 0:
        raise ValueError("at least one weight must be positive")
    return {n: v / total for n, v in raw.items()}


def normalization_processor(body: Mapping[str, Any]) -> dict[str, Any]:
    """The ``normalization-processor`` of a search pipeline body (ConfigError when none)."""
    for proc in body.get("phase_results_processors") or []:
        if isinstance(proc, dict) and isinstance(proc.get("normalization-processor"), dict):
            return proc["normalization-processor"]  # type: ignore[no-any-return]
    raise ConfigError("search pipeline has no normalization-processor")


def pipeline_weights(body: Mapping[str, Any]) -> HybridWeights:
    """The ``[bm25, vector]`` weights of a hybrid pipeline body (ConfigError when invalid)."""
    comb = normalization_processor(body).get("combination") or {}
    return HybridWeights.from_list((comb.get("parameters") or {}).get("weights"))
