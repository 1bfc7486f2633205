"""The composition root: ``create_app(settings)`` builds the services once in the lifespan and
includes every router.

The lifespan builds the tuning store, the search service and the complete-the-look service over
one backend; the models they need (the joint model, the compatibility model) load on first use,
so the API starts fast. ``loaders`` replaces a model loader (``joint``, ``compat``) or a service
(``search_service``, ``looks_service``, ``tuning``): tests inject fakes that way.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from engine.api.errors import install_error_handlers
from engine.api.image_serving import ImageServer
from engine.api.routers import admin, health, images, looks, preview, search, web
from engine.api.state import SERVICE_NAMES, AppState
from engine.backend import Backend
from engine.engines import connect
from engine.errors import ModelUnavailable
from engine.looks.service import LookService
from engine.search.quality import QualityRerank
from engine.search.service import SearchService
from engine.settings import Settings
from engine.tuning.weights import TuningStore

logger = logging.getLogger(__name__)


def default_loaders(settings: Settings) -> dict[str, Callable[[], Any]]:
    """Heavy objects, loaded on first use."""

    def joint() -> Any:
        from engine.models.encoders import apply_num_threads
        from engine.models.joint import JointModel

        model = JointModel.load(
            settings.models.joint_path,
            device=settings.models.device,
            num_threads=settings.models.num_threads,
        )
        if settings.models.onnx:
            logger.info("joint model backbones: %s", model.accelerate(settings.models.num_threads))
        apply_num_threads(settings.api.torch_threads or None)
        return model

    def compat() -> Any:
        """The compatibility model, or None when none is trained (looks-only answers)."""
        from engine.looks.compat import CompatModel

        try:
            return CompatModel.load(settings.models.compat_path, device="cpu")
        except ModelUnavailable as exc:
            logger.warning("complete-the-look without the compatibility model: %s", exc.message)
            return None

    def shopper() -> Any:
        """The shopper-photo model (localiser + query tower), or None: photos as studio shots."""
        from engine.models.shopper import ShopperModel

        try:
            return ShopperModel.load(settings.models.bundle)
        except ModelUnavailable as exc:
            logger.warning("photo search without the shopper-photo model: %s", exc.message)
            return None

    return {"joint": joint, "compat": compat, "shopper": shopper}


def build_services(state: AppState, overrides: dict[str, Callable[[], Any]]) -> None:
    """The services, each built once (cheap: models load on first use); ``overrides``: service
    name -> factory of a stand-in."""
    settings, backend = state.settings, state.backend
    for name, factory in overrides.items():
        state.put(name, factory())
    if "tuning" not in overrides:
        state.tuning = TuningStore(backend, settings.cluster)
    if "search_service" not in overrides:
        state.search = SearchService.from_settings(
            settings,
            backend,
            model=lambda: state.model("joint"),
            shopper=lambda: state.model("shopper"),
            # the merchandiser's live LTR blend (PUT /admin/weights) re-ranks every result list;
            # read through the state, so a replaced tuning store is the one asked
            quality=QualityRerank(lambda: state.tuning.blend()),
        )
    if "looks_service" not in overrides:
        state.looks = LookService(
            backend,
            products_index=settings.cluster.products_index,
            looks_index=settings.cluster.looks_index,
            model_loader=lambda: state.model("compat"),
            joint_loader=lambda: state.model("joint"),
        )
    if "images_service" not in overrides:
        # product images read with the ingest limits and the hosts ingest may fetch from
        state.images = ImageServer(
            backend, settings.cluster.products_index, settings.ingest.url_allowed_hosts
        )


def create_app(
    settings: Settings,
    backend: Backend | None = None,
    loaders: dict[str, Callable[[], Any]] | None = None,
) -> FastAPI:
    given = dict(loaders or {})
    services = {k: v for k, v in given.items() if k in SERVICE_NAMES}
    models = {k: v for k, v in given.items() if k not in SERVICE_NAMES}

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        be = backend or connect(settings)
        state = AppState(
            settings=settings, backend=be, loaders={**default_loaders(settings), **models}
        )
        build_services(state, services)
        app.state.outfit = state
        yield
        if "images_service" not in services:
            state.images.close()

    app = FastAPI(
        title="outfit-search",
        version="0.1.0",
        description="Multimodal product search and complete-the-look for OpenSearch catalogs.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    app.include_router(health.router)
    app.include_router(search.router)
    app.include_router(looks.router)
    app.include_router(admin.router)
    app.include_router(preview.router)
    app.include_router(images.router)
    app.include_router(web.router)
    app.mount("/static", web.static_files(), name="static")
    return app
