from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from engine.api.deps import BackendDep, SettingsDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(backend: BackendDep, settings: SettingsDep) -> dict[str, Any]:
    """Service and cluster health; 200 even when the cluster is down (status says so)."""
    cluster: dict[str, Any]
    try:
        info = backend.info()
        h = backend.client.cluster.health()
        cluster = {"status": h.get("status"), "version": info.get("version", {}).get("number")}
    except Exception as exc:  # noqa: BLE001 - health must answer whatever the cluster does
        cluster = {"status": "unreachable", "error": str(exc)}
    products = settings.cluster.products_index
    return {"status": "ok", "cluster": cluster, "products_index": products}
