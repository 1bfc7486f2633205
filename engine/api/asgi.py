"""The ASGI entry point for servers that start the app themselves, one call per worker process:

    uvicorn --factory engine.api.asgi:app --workers 2

:func:`app` builds the settings from the environment (``OUTFIT_*``, ``.env``) like every entry
point and returns :func:`engine.api.app.create_app` of them. ``python -m engine serve`` uses it
when ``OUTFIT_API__WORKERS`` > 1 (a multi-process server needs an import string, not an app).
"""

from __future__ import annotations

from fastapi import FastAPI


def app() -> FastAPI:
    """A new app over the settings of the environment (uvicorn's ``--factory`` callable)."""
    from engine.api.app import create_app
    from engine.settings import load_settings

    return create_app(load_settings())
