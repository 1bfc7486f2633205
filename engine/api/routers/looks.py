"""Complete-the-look endpoints: ``POST /complete-the-look`` and ``GET /looks/{look_id}``.

``POST /complete-the-look`` takes JSON (``item_id`` of a catalog product, or ``base64`` of a
photo) or ``multipart/form-data`` with a ``file`` (or ``image``) part holding the photo; other
options as form fields (``slots`` repeated or comma-separated, ``filters`` and
``size_per_slot`` as JSON object strings). The answer lists complementary items per slot, each
with a score and a reason (the look it came from, and/or the compatibility model's score).
Unknown ids -> 404; a slot without candidates -> an empty list. All errors share the body
``{code, message, details}``.
"""

from __future__ import annotations

import json
import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from engine.api.deps import LooksDep, SettingsDep
from engine.api.errors import error_responses
from engine.api.openapi import body_doc, form_schema
from engine.api.uploads import FORM_OVERHEAD, is_multipart, read_photo_form, validate_body
from engine.errors import InvalidInput, PayloadTooLarge
from engine.hybrid import integral
from engine.looks.service import MAX_SIZE, CompleteRequest, LookFilters
from engine.looks.slots import validate_slot
from engine.search.schemas import MAX_PRICE

logger = logging.getLogger(__name__)

router = APIRouter(tags=["complete the look"])


def _slot_name(v: Any) -> Any:
    """Slot names are case-insensitive and ``onepiece``/``one piece`` mean ``one-piece``; an
    unknown one is named in the error."""
    return validate_slot(v) if isinstance(v, str) else v


SlotName = Annotated[
    Literal["top", "bottom", "one-piece", "outerwear", "shoes", "bag", "accessory"],
    BeforeValidator(_slot_name),
]


class FiltersModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)  # always parsed JSON

    gender: str | list[str] | None = Field(
        default=None, description="gender(s) of the recommended items; default: implied by the item"
    )
    min_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    max_price: float | None = Field(default=None, ge=0, le=MAX_PRICE)
    in_stock: bool | None = None
    brand: str | list[str] | None = None

    def to_filters(self) -> LookFilters:
        def as_list(v: str | list[str] | None) -> list[str] | None:
            if v is None:
                return None
            return [v] if isinstance(v, str) else list(v)

        return LookFilters(
            genders=as_list(self.gender),
            min_price=self.min_price,
            max_price=self.max_price,
            in_stock=self.in_stock,
            brands=as_list(self.brand),
        )


class CompleteOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slots: list[SlotName] | None = Field(
        default=None,
        description="slots to fill (top, bottom, one-piece, outerwear, shoes, bag, accessory); "
        "default: every slot that complements the query item",
    )
    size: Annotated[int, Field(ge=1, le=MAX_SIZE), BeforeValidator(integral)] = Field(
        default=5, description="items per slot"
    )
    size_per_slot: dict[
        SlotName, Annotated[int, Field(ge=0, le=MAX_SIZE), BeforeValidator(integral)]
    ] = Field(default_factory=dict, description="items per slot for some slots (0: none)")
    filters: FiltersModel = Field(default_factory=FiltersModel)
    query_slot: SlotName | None = Field(
        default=None, description="the slot of the query photo (default: predicted)"
    )


class CompleteBody(CompleteOptions):
    """Exactly one of ``item_id`` or ``base64`` (a null field counts as not given); strict: a
    JSON body (the form, :class:`CompleteOptions`, has text fields)."""

    model_config = ConfigDict(
        strict=True,
        json_schema_extra={
            "oneOf": [
                {"required": [name], "properties": {name: {"type": "string"}}}
                for name in ("item_id", "base64")
            ]
        },
    )

    item_id: str | None = Field(
        default=None, min_length=1, max_length=256, description="a catalog product id"
    )
    base64: str | None = Field(default=None, min_length=1, description="a photo, base64-encoded")

    @model_validator(mode="after")
    def _one_query(self) -> CompleteBody:
        if (self.item_id is None) == (self.base64 is None):
            raise ValueError("give exactly one of item_id or base64")
        return self


def _request(opts: CompleteOptions, **query: Any) -> CompleteRequest:
    return CompleteRequest(
        query_slot=opts.query_slot,
        slots=opts.slots,
        size=opts.size,
        size_per_slot=dict(opts.size_per_slot),
        filters=opts.filters.to_filters(),
        **query,
    )


@router.post(
    "/complete-the-look",
    summary="Complementary items per slot for a catalog item or a photo",
    openapi_extra=body_doc(CompleteBody, form_schema(CompleteOptions, lists=("slots",))),
    responses=error_responses(
        {
            404: "unknown item id",
            413: "photo or body too large",
            422: "invalid request or image",
        }
    ),
)
async def complete_the_look(
    request: Request, svc: LooksDep, settings: SettingsDep
) -> dict[str, Any]:
    """Look-based candidates (looks holding the item or a similar one) merged with the type-aware
    compatibility model's candidates (k-NN on a partner prototype, re-scored in the pair's
    subspace), filtered, diversified per slot (MMR) and explained."""
    from engine.search.inputs import image_from_base64, image_from_bytes

    api = settings.api
    if is_multipart(request):
        data, fields = await read_photo_form(
            request,
            api,
            max_fields=32,
            list_fields=("slots",),
            json_fields=("filters", "size_per_slot"),
            limit_details=False,
        )
        opts = validate_body(CompleteOptions, fields)

        def run_upload() -> dict[str, Any]:
            image = image_from_bytes(data, api)
            return svc.complete(_request(opts, image=image))

        return await run_in_threadpool(run_upload)
    raw = await request.body()
    limit = 4 * ((api.max_upload_bytes + 2) // 3) + FORM_OVERHEAD
    if len(raw) > limit:
        raise PayloadTooLarge(f"request body is too large: {len(raw)} bytes > {limit} bytes")
    if not raw.strip():
        raise InvalidInput("request body is empty: send JSON or a multipart upload")
    try:
        payload = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc
    body: CompleteBody = validate_body(CompleteBody, payload)

    def run_json() -> dict[str, Any]:
        if body.item_id is not None:
            req = _request(body, item_id=body.item_id)
        else:
            assert body.base64 is not None
            req = _request(body, image=image_from_base64(body.base64, api))
        return svc.complete(req)

    return await run_in_threadpool(run_json)


@router.get(
    "/looks/{look_id}",
    summary="A stored look with its items",
    responses=error_responses({404: "unknown look id"}),
)
def get_look(look_id: str, svc: LooksDep) -> dict[str, Any]:
    return svc.get_look(look_id)
