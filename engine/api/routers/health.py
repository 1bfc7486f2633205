from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import APIRouter

from engine.api.deps import BackendDep, SettingsDep
from engine.backend import Backend
from engine.bundle import fit_report
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
    try:
        counts: dict[str, int] | None = dict(backend.term_counts(index, "article_type"))
    except EngineError:
        counts = None  # no index yet, or the cluster is down: nothing to compare
    return fit_report(bundle, counts)
