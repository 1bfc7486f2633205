from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from engine.api.deps import BackendDep, SettingsDep
from engine.backend import Backend
from engine.bundle import coverage, not_fitted_message, read_manifest
from engine.errors import EngineError

router = APIRouter(tags=["health"])


@router.get("/health")
def health(backend: BackendDep, settings: SettingsDep) -> dict[str, Any]:
    """Service and cluster health; 200 even when the cluster is down (status says so)."""
    cluster: dict[str, Any]
    try:
        info = backend.info()
        h = backend.cluster_health()
        cluster = {"status": h.get("status"), "version": info.get("version", {}).get("number")}
    except Exception as exc:  # noqa: BLE001 - health must answer whatever the cluster does
        cluster = {"status": "unreachable", "error": str(exc)}
    products = settings.cluster.products_index
    return {
        "status": "ok",
        "cluster": cluster,
        "products_index": products,
        "models": catalog_fit(backend, settings.models.bundle, products),
    }


def catalog_fit(backend: Backend, bundle: Path | None, index: str) -> dict[str, Any]:
    """Which model bundle serves, and whether it was fitted to the catalog in ``index``."""
    out: dict[str, Any] = {"bundle": str(bundle) if bundle else "default"}
    try:
        manifest = read_manifest(bundle)
    except EngineError as exc:
        out["warning"] = exc.message
        return out
    if manifest is None:
        out["warning"] = "the bundle has no manifest.json: cannot tell which catalog it knows"
        return out
    out["name"] = manifest.name
    try:
        counts = backend.term_counts(index, "article_type")
    except EngineError:
        return out  # no index yet, or the cluster is down: nothing to compare
    if not counts:
        return out
    cov = coverage(manifest.label_spaces.get("article_type"), counts)
    out["fitted_to_catalog"] = cov.fitted
    out["type_label_coverage"] = round(cov.covered, 4)
    if not cov.fitted:
        out["warning"] = not_fitted_message(cov, bundle)
    return out
