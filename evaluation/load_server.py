"""The server side of :mod:`evaluation.load_search`: the API with its search service bound to
one products index, in one process or in several uvicorn workers."""

from __future__ import annotations

import os
import threading
from typing import Any

from engine.settings import Settings, load_settings

INDEX_ENV = "OUTFIT_LOAD_SEARCH_INDEX"  # the index a worker process of ``serve`` binds to


def bound_app(settings: Settings, index: str, *, preload: bool = False) -> Any:
    """The API with the search service bound to ``index`` (``preload``: load the joint model
    now instead of on the first request)."""
    from engine.api.app import create_app, default_loaders
    from engine.engines import connect
    from engine.search.service import SearchService

    backend = connect(settings)
    lock = threading.Lock()
    holder: dict[str, Any] = {}

    load_joint = default_loaders(settings)["joint"]  # the API's own loader (ONNX backbones)

    def joint() -> Any:
        with lock:
            if "m" not in holder:
                holder["m"] = load_joint()
            return holder["m"]

    def service() -> SearchService:
        return SearchService.from_settings(settings, backend, joint, index=index)

    if preload:
        joint()

    return create_app(
        settings, backend=backend, loaders={"joint": joint, "search_service": service}
    )


def worker_app() -> Any:
    """uvicorn's factory in each worker process of a multi-worker ``serve``: the models are
    loaded here, before the worker accepts, so no timed request pays for a cold worker (the
    warm-up's keep-alive connection reaches one worker only)."""
    return bound_app(load_settings(), os.environ[INDEX_ENV], preload=True)


def serve(settings: Settings, index: str, host: str, port: int, workers: int = 1) -> None:
    """Run the API with the search service bound to ``index`` in ``workers`` processes (blocks)."""
    import uvicorn

    quiet: dict[str, Any] = {"log_level": "warning", "access_log": False}
    quiet.update(settings.api.server_options())
    if workers > 1:
        os.environ[INDEX_ENV] = index  # inherited by the worker processes
        target = "evaluation.load_server:worker_app"
        uvicorn.run(target, factory=True, workers=workers, host=host, port=port, **quiet)
    else:
        uvicorn.run(bound_app(settings, index), host=host, port=port, **quiet)
