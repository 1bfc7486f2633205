"""One table maps domain errors to HTTP statuses; one body shape: {code, message, details}."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException

from engine import errors as e

logger = logging.getLogger(__name__)

# Most specific first: the first matching class wins.
STATUS_TABLE: tuple[tuple[type[e.EngineError], int], ...] = (
    (e.PayloadTooLarge, 413),
    (e.InvalidImage, 422),
    # 422 like every other unacceptable input (a bad scheme is one too): the request is well
    # formed and the caller is authorised, its URL is what the service refuses to fetch.
    (e.ForbiddenUrl, 422),
    (e.InvalidInput, 422),
    (e.NotFound, 404),
    (e.Unauthorized, 401),
    (e.Conflict, 409),
    (e.AdminDisabled, 503),
    (e.ModelUnavailable, 503),
    (e.ClusterUnavailable, 503),
    (e.ClusterRequestError, 502),
    (e.ConfigError, 500),
    (e.EngineError, 500),
)


class ErrorBody(BaseModel):
    """The body of every error answer."""

    code: str = Field(description="machine-readable error code, e.g. invalid_request")
    message: str = Field(description="what went wrong, for a human")
    details: dict[str, Any] = Field(description="context (e.g. the validation errors)")


def error_responses(described: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """OpenAPI ``responses`` documenting the error body: the given statuses with their
    descriptions, and every other 4xx/5xx (also replaces FastAPI's default 422 schema, which
    is not what the handlers below send)."""
    out: dict[int | str, dict[str, Any]] = {
        status: {"model": ErrorBody, "description": text}
        for status, text in (described or {}).items()
    }
    out.setdefault(422, {"model": ErrorBody, "description": "invalid request"})
    out["4XX"] = {"model": ErrorBody, "description": "client error"}
    out["5XX"] = {"model": ErrorBody, "description": "server or cluster error"}
    return out


def status_for(exc: e.EngineError) -> int:
    for cls, status in STATUS_TABLE:
        if isinstance(exc, cls):
            return status
    return 500


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    return {"code": code, "message": message, "details": details or {}}


def _jsonable(details: dict[str, Any]) -> dict[str, Any]:
    return {
        k: (v if isinstance(v, str | int | float | bool | list | dict) or v is None else str(v))
        for k, v in details.items()
    }


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(e.EngineError)
    async def _engine_error(_: Request, exc: e.EngineError) -> JSONResponse:
        status = status_for(exc)
        if status >= 500:
            logger.warning("%s: %s", exc.code, exc.message)
        return JSONResponse(
            error_body(exc.code, exc.message, _jsonable(exc.details)), status_code=status
        )

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errs = [
            {
                "loc": list(err.get("loc", ())),
                "msg": err.get("msg", ""),
                "type": err.get("type", ""),
            }
            for err in exc.errors()
        ]
        first = errs[0] if errs else {"loc": [], "msg": "invalid request"}
        where = ".".join(str(p) for p in first["loc"])
        return JSONResponse(
            error_body("invalid_request", f"{where}: {first['msg']}", {"errors": errs}),
            status_code=422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed", 401: "unauthorized"}.get(
            exc.status_code, "http_error"
        )
        return JSONResponse(
            error_body(code, str(exc.detail)), status_code=exc.status_code, headers=exc.headers
        )
