"""Model bundles: every learned part fitted to one catalog, in one directory.

``python -m engine fit`` writes a bundle; ``OUTFIT_MODELS__BUNDLE=/path/to/bundle`` points
ingest, the API and evaluation at it. The shipped default (``engine/models/weights/``, fitted
to the development catalog) is a bundle too. A bundle holds::

    manifest.json     what was fitted, label spaces, catalog digest, metrics, versions
    joint.pt          joint image-text space, attribute and colour heads, binary coder
    compat.pt         complete-the-look compatibility model (absent: fitted without looks)
    fit.json          the full fit report (per-step metrics and timings)

This module only reads and writes manifests and checks label-space coverage (no model code,
no torch), so serving code can ask "does this bundle know this catalog?" cheaply.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import InvalidInput
from engine.files import atomic_write_bytes

logger = logging.getLogger(__name__)

MANIFEST = "manifest.json"
BUNDLE_FORMAT = "outfit-bundle/1"
DEFAULT_BUNDLE = Path(__file__).resolve().parent / "models" / "weights"

# Share of the catalog's products (by count) whose value the bundle's label space must hold
# for the bundle to count as fitted to the catalog for that attribute.
COVERAGE_THRESHOLD = 0.8


class Manifest(BaseModel):
    model_config = ConfigDict(extra="allow")

    format: str = BUNDLE_FORMAT
    name: str = "bundle"
    created: str | None = None
    catalog: dict[str, Any] = Field(default_factory=dict)
    label_spaces: dict[str, list[str]] = Field(default_factory=dict)
    attribute_fields: dict[str, str] = Field(default_factory=dict)
    parts: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)
    notes: list[str] = Field(default_factory=list)
    versions: dict[str, str] = Field(default_factory=dict)


def read_manifest(bundle: Path | None) -> Manifest | None:
    """The manifest of a bundle directory (None = the shipped default); None when it has none."""
    path = Path(bundle if bundle is not None else DEFAULT_BUNDLE) / MANIFEST
    if not path.is_file():
        return None
    try:
        return Manifest.model_validate(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, json.JSONDecodeError, ValidationError) as exc:
        raise InvalidInput(f"cannot read bundle manifest {path}: {exc}", path=str(path)) from exc


def write_manifest(bundle: Path, manifest: Manifest) -> Path:
    path = Path(bundle) / MANIFEST
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(manifest.model_dump(), indent=2, ensure_ascii=False, default=str)
    atomic_write_bytes(path, (data + "\n").encode("utf-8"))
    return path


@dataclass(frozen=True)
class Coverage:
    """How much of a catalog's labels one attribute's label space holds."""

    attribute: str
    covered: float  # share of labelled products whose value is in the label space
    labelled: int
    unknown_values: dict[str, int]

    @property
    def fitted(self) -> bool:
        return self.labelled > 0 and self.covered >= COVERAGE_THRESHOLD


def coverage(
    label_space: list[str] | None, counts: Mapping[str, int], attribute: str = "article_type"
) -> Coverage:
    """The share of products (value -> count) whose value the label space knows (exact, or
    case-insensitively)."""
    known = {v.strip().lower() for v in (label_space or [])}
    total = sum(counts.values())
    hit = sum(n for v, n in counts.items() if str(v).strip().lower() in known)
    unknown = {v: n for v, n in counts.items() if str(v).strip().lower() not in known}
    top = dict(sorted(unknown.items(), key=lambda kv: -kv[1])[:10])
    return Coverage(attribute, hit / total if total else 0.0, total, top)


class CatalogFitCheck:
    """Does the loaded bundle know the indexed catalog? (cached; re-checked every ``ttl_s``)

    ``counts`` is a callable returning the index's documents per ``article_type`` (the backend's
    ``term_counts``); ``label_space`` the bundle's type labels. A cluster error leaves the last
    answer (or "fitted" before any): the check never breaks serving.
    """

    def __init__(
        self,
        counts: Callable[[], Mapping[str, int]],
        label_space: Callable[[], list[str] | None],
        *,
        bundle: Path | None = None,
        ttl_s: float = 300.0,
    ) -> None:
        self._counts = counts
        self._label_space = label_space
        self.bundle = bundle
        self.ttl_s = ttl_s
        self._at = -1e18
        self._result: Coverage | None = None

    def coverage(self) -> Coverage | None:
        now = time.monotonic()
        if now - self._at >= self.ttl_s:
            self._at = now
            try:
                counts = dict(self._counts())
            except Exception as exc:  # noqa: BLE001 - a check, never a failure of search
                logger.debug("catalog fit check skipped: %s", exc)
                return self._result
            self._result = coverage(self._label_space(), counts) if counts else None
            if self._result is not None and not self._result.fitted:
                logger.warning("%s", not_fitted_message(self._result, self.bundle))
        return self._result

    def fitted(self) -> bool:
        """False only when the index has typed products and the bundle's labels miss them."""
        cov = self.coverage()
        return cov is None or cov.fitted


def not_fitted_message(cov: Coverage, bundle: Path | None) -> str:
    where = bundle or "the shipped default"
    shown = ", ".join(f"{k} ({v})" for k, v in list(cov.unknown_values.items())[:5])
    return (
        f"the model bundle ({where}) was not fitted to this catalog: its {cov.attribute} labels "
        f"cover {cov.covered:.0%} of the indexed products (unknown: {shown}); categories come "
        "from a k-NN vote over the index and re-ranks use the catalog's own fields. Fit the "
        "models with `python -m engine fit --catalog FILE --mapping M --images DIR --out "
        "BUNDLE` and set OUTFIT_MODELS__BUNDLE=BUNDLE"
    )


def fit_report(bundle: Path | None, type_counts: Mapping[str, int] | None) -> dict[str, Any]:
    """Which bundle serves and whether it knows the catalog whose products per article type are
    ``type_counts`` (None: unknown, e.g. no index yet): ``bundle``, ``name``,
    ``fitted_to_catalog``, ``type_label_coverage`` and a ``warning`` when it does not (or when
    the bundle cannot be read). Used by ``GET /health`` and by ingest."""
    out: dict[str, Any] = {"bundle": str(bundle) if bundle else "default"}
    try:
        manifest = read_manifest(bundle)
    except InvalidInput as exc:
        out["warning"] = exc.message
        return out
    if manifest is None:
        out["warning"] = "the bundle has no manifest.json: cannot tell which catalog it knows"
        return out
    out["name"] = manifest.name
    if not type_counts:
        return out
    cov = coverage(manifest.label_spaces.get("article_type"), type_counts)
    out["fitted_to_catalog"] = cov.fitted
    out["type_label_coverage"] = round(cov.covered, 4)
    if not cov.fitted:
        out["warning"] = not_fitted_message(cov, bundle)
    return out
