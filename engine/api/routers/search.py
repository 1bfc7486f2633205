"""Search endpoints: ``POST /search/text``, ``POST /search/image``, ``POST /search/compose``.

``/search/image`` and ``/search/compose`` take either JSON (``url``, ``base64`` or ``item_id``
as the photo) or ``multipart/form-data`` with a ``file`` part (other options as form fields;
``filters`` as a JSON object string, ``wanted`` / ``unwanted`` repeated or comma-separated).
Too large a body or photo -> 413; not an image, empty, corrupt or an invalid field -> 422; all
errors share the body ``{code, message, details}``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Request
from PIL import Image
from starlette.concurrency import run_in_threadpool

from engine.api.deps import SearchDep, SettingsDep
from engine.api.errors import error_responses
from engine.api.openapi import body_doc, form_schema
from engine.api.uploads import (
    FORM_OVERHEAD,
    check_content_length,
    is_multipart,
    read_photo_form,
    validate_body,
)
from engine.errors import InvalidInput, PayloadTooLarge
from engine.search.inputs import (
    image_from_base64,
    image_from_bytes,
    image_from_url,
    max_base64_chars,
)
from engine.search.schemas import (
    ComposeOptions,
    ComposeRequest,
    ImageOptions,
    ImageSearchRequest,
    ImageSource,
    SearchResponse,
    TextSearchRequest,
)
from engine.search.service import SearchService
from engine.settings import ApiSettings

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/search", tags=["search"])


# --------------------------------------------------------------------------- request parsing


async def _json_body(request: Request, limit: int) -> Any:
    check_content_length(request, limit)
    raw = await request.body()
    if len(raw) > limit:
        raise PayloadTooLarge(
            f"request body is too large: {len(raw)} bytes > limit of {limit} bytes",
            size=len(raw),
            max_bytes=limit,
        )
    if not raw.strip():
        raise InvalidInput("request body is empty: send JSON or a multipart upload")
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"request body is not valid JSON: {exc}") from exc


def _load_image(source: ImageSource, api: ApiSettings) -> Image.Image | None:
    """The photo of a JSON request (None when it names a catalog item)."""
    if source.base64 is not None:
        return image_from_base64(source.base64, api)
    if source.url is not None:
        return image_from_url(source.url, api)
    return None


async def _run(fn: Callable[[], SearchResponse]) -> SearchResponse:
    return await run_in_threadpool(fn)


# --------------------------------------------------------------------------- endpoints


@router.post(
    "/text",
    response_model=SearchResponse,
    summary="Search products with words (hybrid BM25 + vector)",
    responses=error_responses({422: "invalid request", 503: "unavailable"}),
)
def search_text(req: TextSearchRequest, svc: SearchDep) -> SearchResponse:
    """BM25 over title, type, colour, attributes, brand and description plus k-NN on the joint
    text vector, combined by the installed hybrid pipeline (``weights`` overrides it for this
    request). ``mode`` = ``bm25`` or ``vector`` runs one side alone."""
    return svc.text_search(
        req.query,
        req.filters.to_filters(),
        size=req.size,
        mode=req.mode,
        weights=req.weights.as_tuple() if req.weights else None,
        explain=req.explain,
    )


@router.post(
    "/image",
    response_model=SearchResponse,
    summary="Search products with a photo (or a catalog item: more like this)",
    openapi_extra=body_doc(ImageSearchRequest, form_schema(ImageOptions)),
    responses=error_responses(
        {
            404: "unknown item id",
            413: "photo or body too large",
            422: "not an image / invalid request",
        }
    ),
)
async def search_image(request: Request, svc: SearchDep, settings: SettingsDep) -> SearchResponse:
    """The photo's joint embedding; its article type predicted by the classifier fused with a
    similarity-weighted vote of its nearest catalog photos; k-NN restricted to that type when
    confident (``category=off`` disables); optional Hamming coarse pass (``coarse``)."""
    opts, photo = await _photo_query(request, settings.api, ImageOptions, ImageSearchRequest)

    def run() -> SearchResponse:
        image, item_id = photo()
        kwargs = {"size": opts.size, "category": opts.category, "coarse": opts.coarse}
        if item_id is not None:
            return svc.similar_to_item(
                item_id, opts.filters.to_filters(), explain=opts.explain, **kwargs
            )
        assert image is not None
        return svc.image_search(image, opts.filters.to_filters(), explain=opts.explain, **kwargs)

    return await _run(run)


@router.post(
    "/compose",
    response_model=SearchResponse,
    summary="Query arithmetic: a photo plus words to add and to remove",
    openapi_extra=body_doc(
        ComposeRequest, form_schema(ComposeOptions, lists=("wanted", "unwanted"))
    ),
    responses=error_responses(
        {
            404: "unknown item id",
            413: "photo or body too large",
            422: "not an image / invalid request",
        }
    ),
)
async def search_compose(request: Request, svc: SearchDep, settings: SettingsDep) -> SearchResponse:
    """``q = normalize(f_image + w f_text(wanted) - w_neg f_text(unwanted))``; words that name
    attribute values (colours, patterns, sleeve lengths, necks, types) also softly filter:
    similarity x P(wanted value) x (1 - P(unwanted value)). ``text`` is parsed into wanted and
    unwanted words ("this shirt but in black, not striped")."""
    opts, photo = await _photo_query(
        request, settings.api, ComposeOptions, ComposeRequest, lists=("wanted", "unwanted")
    )

    def run() -> SearchResponse:
        image, item_id = photo()
        return _compose(svc, opts, image=image, item_id=item_id)

    return await _run(run)


PhotoSource = Callable[[], tuple[Image.Image | None, str | None]]


async def _photo_query(
    request: Request,
    api: ApiSettings,
    form_model: type[Any],
    json_model: type[ImageSource],
    *,
    lists: tuple[str, ...] = (),
) -> tuple[Any, PhotoSource]:
    """A photo route's request, a multipart upload (options ``form_model``) or JSON
    (``json_model``: url, base64 or item id): the validated options, and a callable giving the
    decoded photo or the item id, run in the worker thread (decoding and URL fetches block)."""
    if is_multipart(request):
        data, fields = await read_photo_form(request, api, max_fields=64, list_fields=lists)
        return validate_body(form_model, fields), lambda: (image_from_bytes(data, api), None)
    body = await _json_body(request, max_base64_chars(api) + FORM_OVERHEAD)
    req = validate_body(json_model, body)
    if req.item_id is not None:
        return req, lambda: (None, req.item_id)
    return req, lambda: (_load_image(req, api), None)


def _compose(
    svc: SearchService,
    opts: ComposeOptions,
    *,
    image: Image.Image | None = None,
    item_id: str | None = None,
) -> SearchResponse:
    return svc.compose_search(
        image=image,
        item_id=item_id,
        text=opts.text,
        wanted=opts.wanted,
        unwanted=opts.unwanted,
        filters=opts.filters.to_filters(),
        size=opts.size,
        text_weight=opts.text_weight,
        negative_weight=opts.negative_weight,
        soft_filter=opts.soft_filter,
        category=opts.category,
        explain=opts.explain,
    )
