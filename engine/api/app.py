"""App factory + lifespan. ``create_app(settings)``; routers are added per feature."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from engine.api.errors import install_error_handlers
from engine.api.routers import health
from engine.api.state import AppState
from engine.backend import Backend
from engine.settings import Settings

logger = logging.getLogger(__name__)


def default_loaders(settings: Settings) -> dict[str, Callable[[], Any]]:
    """Heavy objects, loaded on first use."""

    def joint() -> Any:
        from engine.models.joint import JointModel

        model = JointModel.load(
            settings.models.joint_path,
            device=settings.models.device,
            num_threads=settings.models.num_threads,
        )
        if settings.models.onnx:
            logger.info("joint model backbones: %s", model.accelerate(settings.models.num_threads))
        return model

    return {"joint": joint}


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    loaders: dict[str, Callable[[], Any]] | None = None,
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        be = backend or Backend.from_settings(settings)
        app.state.outfit = AppState(
            settings=settings, backend=be, loaders={**default_loaders(settings), **(loaders or {})}
        )
        yield

    app = FastAPI(
        title="outfit-search",
        version="0.1.0",
        description="Multimodal product search and complete-the-look for OpenSearch catalogs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    for module_name in ("search", "looks", "admin"):
        _include_optional(app, module_name)
    return app


def _include_optional(app: FastAPI, module_name: str) -> None:
    """Feature routers live in engine.api.routers.<name> and expose ``router``."""
    import importlib

    try:
        module = importlib.import_module(f"engine.api.routers.{module_name}")
    except ModuleNotFoundError as exc:
        if exc.name == f"engine.api.routers.{module_name}":
            return
        raise
    app.include_router(module.router)
