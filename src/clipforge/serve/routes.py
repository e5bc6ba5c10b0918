"""Item files, health, metrics and the web page."""

from __future__ import annotations

from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from ..errors import NotFoundError
from .files import image_mime
from .openapi import errors
from .schemas import Status
from .service import ServiceDep
from .settings import MAX_ITEM_ID

STATIC = FsPath(__file__).parent / "static"
# The page loads nothing from elsewhere; the policy makes that a rule for the browser too.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
_FILE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
ItemPath = Annotated[int, Path(ge=0, le=MAX_ITEM_ID)]

router = APIRouter()


def _item_image(collection, item_id: int) -> tuple[bytes, str]:
    data, _ = collection.item_file(item_id)
    mime = image_mime(data)
    if mime is None:
        raise NotFoundError(f"collection {collection.name} has no image file for item {item_id}")
    return data, mime


@router.get("/items/{collection}/{item_id}/thumbnail", name="item_thumbnail", tags=["items"],
            response_class=Response, responses={200: {"content": {"image/jpeg": {}}}, **errors(404, 422)})
async def item_thumbnail(collection: str, item_id: ItemPath, service: ServiceDep) -> Response:
    """A JPEG thumbnail of an image item of the collection."""
    served = service.get(collection)
    data = await service.run(service.thumbnails.get, served.collection, item_id, service.limits.max_image_pixels)
    return Response(data, media_type="image/jpeg", headers=_FILE_HEADERS)


@router.get("/items/{collection}/{item_id}/image", name="item_image", tags=["items"],
            response_class=Response, responses={200: {"content": {"image/*": {}}}, **errors(404, 422)})
async def item_image(collection: str, item_id: ItemPath, service: ServiceDep) -> Response:
    """The original file of an image item of the collection."""
    served = service.get(collection)
    data, mime = await service.run(_item_image, served.collection, item_id)
    return Response(data, media_type=mime, headers=_FILE_HEADERS)


@router.get("/healthz", response_model=Status, response_model_exclude_none=True, tags=["health"])
async def healthz() -> Status:
    """Liveness: the process answers."""
    return Status(status="ok")


@router.get("/readyz", response_model=Status, response_model_exclude_none=True, tags=["health"],
            responses={503: {"model": Status}})
async def readyz(service: ServiceDep):
    """Readiness: every model is loaded and every index warm."""
    if service.ready:
        return Status(status="ready")
    status = Status(status="failed", detail=service.load_error) if service.load_error else Status(status="loading")
    return JSONResponse(status.model_dump(exclude_none=True), status_code=503)


@router.get("/metrics", tags=["health"], response_class=Response)
async def prometheus_metrics(request: Request) -> Response:
    """Prometheus metrics: request counts and latency by route, text batch sizes."""
    return Response(generate_latest(request.app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", include_in_schema=False)
async def page() -> FileResponse:
    return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)
