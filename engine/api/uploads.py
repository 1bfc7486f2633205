"""Photo uploads as ``multipart/form-data``: one parser for every endpoint that takes a photo.

The photo is the ``file`` (or ``image``) part; every other part is an option field. Too large a
body or photo -> :class:`PayloadTooLarge` (HTTP 413); a malformed body, no photo part or an
invalid JSON field -> :class:`InvalidInput` (HTTP 422).
"""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any, TypeVar

from fastapi import Request
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError
from starlette.datastructures import UploadFile

from engine.errors import InvalidInput, PayloadTooLarge
from engine.settings import ApiSettings

FORM_OVERHEAD = 64 * 1024  # multipart boundaries and form fields around the photo
PHOTO_PARTS = ("file", "image")
M = TypeVar("M", bound=BaseModel)


def validate_body(model: type[M], data: Any) -> M:
    """``data`` (a parsed JSON body or form fields) as ``model``; invalid -> the same 422 as
    FastAPI's own body validation (errors located under ``body``)."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False)
        for err in errors:
            err["loc"] = ("body", *err.get("loc", ()))
        raise RequestValidationError(errors) from None


def is_multipart(request: Request) -> bool:
    return request.headers.get("content-type", "").lower().startswith("multipart/form-data")


def check_content_length(request: Request, limit: int, *, details: bool = True) -> None:
    """413 when the declared ``Content-Length`` exceeds ``limit`` (``details``: add the sizes
    to the error and say "limit of" in its message)."""
    declared = request.headers.get("content-length")
    if not (declared and declared.isdigit() and int(declared) > limit):
        return
    if details:
        raise PayloadTooLarge(
            f"request body is too large: {declared} bytes > limit of {limit} bytes",
            size=int(declared),
            max_bytes=limit,
        )
    raise PayloadTooLarge(f"request body is too large: {declared} bytes > {limit} bytes")


async def read_photo_form(
    request: Request,
    api: ApiSettings,
    *,
    max_fields: int,
    list_fields: Collection[str] = (),
    json_fields: Collection[str] = ("filters",),
    limit_details: bool = True,
) -> tuple[bytes, dict[str, Any]]:
    """(photo bytes, option fields) of a multipart request.

    Fields in ``list_fields`` become lists (repeated and/or comma-separated values, stripped,
    empties dropped); fields in ``json_fields`` are parsed as JSON (blank -> ``{}``); any other
    field keeps its first value. ``limit_details`` adds ``size``/``max_bytes`` to the 413 errors
    (see :func:`check_content_length`).
    """
    check_content_length(request, api.max_upload_bytes + FORM_OVERHEAD, details=limit_details)
    try:
        form = await request.form(max_files=2, max_fields=max_fields)
    except Exception as exc:  # noqa: BLE001 - malformed multipart is the client's error
        raise InvalidInput(f"malformed multipart body: {exc}") from exc
    try:
        upload = form.get("file") or form.get("image")
        if not isinstance(upload, UploadFile):
            raise InvalidInput("multipart body needs a 'file' part with the photo")
        data = await upload.read(api.max_upload_bytes + 1)
        fields: dict[str, Any] = {}
        for key in form:
            if key in PHOTO_PARTS:
                continue
            values = [v for v in form.getlist(key) if isinstance(v, str)]
            if not values:
                continue
            if key in list_fields:
                fields[key] = [s.strip() for v in values for s in v.split(",") if s.strip()]
            elif len(values) > 1:  # one value per option: which one would be meant?
                raise InvalidInput(f"form field '{key}' is given {len(values)} times; give it once")
            elif key in json_fields:
                try:
                    fields[key] = json.loads(values[0]) if values[0].strip() else {}
                except json.JSONDecodeError as exc:
                    raise InvalidInput(f"'{key}' must be a JSON object: {exc}") from exc
            else:
                fields[key] = values[0]
    finally:
        await form.close()
    if len(data) > api.max_upload_bytes:
        message = f"image is too large: more than {api.max_upload_bytes} bytes"
        if limit_details:
            raise PayloadTooLarge(message, max_bytes=api.max_upload_bytes)
        raise PayloadTooLarge(message)
    return data, fields
