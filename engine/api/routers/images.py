"""``GET /images/{item_id}/{n}``: a product's ``n``-th image (0 = primary), loadable by a
browser wherever the catalog keeps it (:mod:`engine.api.image_serving`).

``?w=`` asks for a JPEG thumbnail at most that wide (16-2048 px). Answers carry a strong
``ETag`` and ``Cache-Control``; ``If-None-Match`` with the current ETag -> 304. Unknown product
or image number -> 404; a source over the size limit -> 413; a source that is not an image ->
422; a URL source on a host ingest may not fetch from -> 422 ``url_not_allowed``; all with the
error body ``{code, message, details}``.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Header, Path, Query, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from engine.api.errors import error_responses
from engine.api.image_serving import MAX_WIDTH, MIN_WIDTH, ImageServer

router = APIRouter(tags=["images"])

CACHE_CONTROL = "public, max-age=3600"


def get_images(request: Request) -> ImageServer:
    server: ImageServer = request.app.state.outfit.images
    return server


ImagesDep = Annotated[ImageServer, Depends(get_images)]


@router.get(
    "/images/{item_id}/{n}",
    summary="A product's n-th image (0 = primary), optionally as a thumbnail",
    response_class=Response,
    responses={
        200: {"content": {"image/*": {}}, "description": "the image bytes"},
        304: {"description": "not modified (If-None-Match)"},
        **error_responses(
            {
                404: "unknown product or image number",
                413: "the image source is over the size limit",
                422: "the source is not an image, or its URL is not allowed",
            }
        ),
    },
)
async def product_image(
    images: ImagesDep,
    item_id: Annotated[str, Path(min_length=1, max_length=256)],
    n: Annotated[int, Path(ge=0, le=1000)],
    w: Annotated[int | None, Query(ge=MIN_WIDTH, le=MAX_WIDTH, description="max width")] = None,
    if_none_match: Annotated[str | None, Header()] = None,
) -> Response:
    served = await run_in_threadpool(images.image, item_id, n, w)
    headers = {"ETag": served.etag, "Cache-Control": CACHE_CONTROL}
    if if_none_match is not None and served.etag in [t.strip() for t in if_none_match.split(",")]:
        return Response(status_code=304, headers=headers)
    return Response(served.data, media_type=served.media_type, headers=headers)
