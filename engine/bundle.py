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
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from engine.errors import InvalidInput
from engine.files import atomic_write_bytes

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
