"""The web app: the shopper page ``GET /`` and the merchandiser page ``GET /merchandising``.

Server-rendered Jinja2 templates plus plain JavaScript and CSS under ``/static`` (package files
of :mod:`engine.api.web`; nothing from a CDN, so the app works offline). The pages call the
JSON API from the browser: search, complete the look, ``/admin/preview`` and ``/admin/weights``
(the admin key is typed into a login form and kept in the tab's ``sessionStorage`` only).
The filter choices (gender, type, colour) are the catalog's own values.
"""

from __future__ import annotations

import logging

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

from engine.api.deps import BackendDep, SettingsDep
from engine.api.web import STATIC_DIR, TEMPLATES_DIR
from engine.backend import Backend
from engine.errors import EngineError

logger = logging.getLogger(__name__)

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(directory=str(TEMPLATES_DIR))

FACETS = (("gender", "gender"), ("article_type", "article_type"), ("colour", "base_colour"))


def static_files() -> StaticFiles:
    """The page assets, mounted at ``/static``."""
    return StaticFiles(directory=str(STATIC_DIR))


def _facets(backend: Backend, index: str) -> dict[str, list[str]]:
    """Values of the filter fields in the catalog (empty lists when the index is unreachable:
    the page still works, the filters become free text)."""
    out: dict[str, list[str]] = {}
    for name, field in FACETS:
        try:
            out[name] = sorted(backend.term_counts(index, field, size=200))
        except EngineError as exc:
            logger.warning("filter values of %s unavailable: %s", field, exc.message)
            out[name] = []
    return out


@router.get("/", response_class=HTMLResponse)
async def shopper_page(
    request: Request, backend: BackendDep, settings: SettingsDep
) -> HTMLResponse:
    facets = await run_in_threadpool(_facets, backend, settings.cluster.products_index)
    return templates.TemplateResponse(request, "shopper.html", {"facets": facets})


@router.get("/merchandising", response_class=HTMLResponse)
async def merchandising_page(request: Request, settings: SettingsDep) -> HTMLResponse:
    return templates.TemplateResponse(
        request,
        "merchandising.html",
        {"hybrid_depth": settings.api.search_hybrid_depth},
    )
