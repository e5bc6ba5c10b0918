"""The FastAPI application: ``create_app(ServeSettings(collections=("pics",)))``.

Routes: the API (``api.py``), the clip-retrieval protocol (``compat.py``), item files,
health, metrics, and the web page at ``/``. Every error a client can cause is a 4xx with a
one-line ``detail``; anything else is logged and answered with a bare 500, never a traceback.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import FastAPI, Path, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.openapi.utils import get_openapi
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from .. import __version__
from ..errors import ClipforgeError, CollectionError, ModelLoadError, NotFoundError
from . import api, compat
from .bodies import add_body_schemas
from .files import image_mime, read_item_file
from .middleware import BodyLimitMiddleware, DeadlineMiddleware, Metrics, MetricsMiddleware
from .schemas import AddTextsRequest, ClassifyRequest, EmbedRequest, SearchRequest, Status
from .service import Service
from .settings import MAX_ITEM_ID, ServeSettings

log = logging.getLogger(__name__)
STATIC = FsPath(__file__).parent / "static"
# The page loads nothing from elsewhere; the policy makes that a rule for the browser too.
_PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' blob: data:; object-src 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
}
_FILE_HEADERS = {"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"}
_STATUS = ((NotFoundError, 404), (CollectionError, 409), (ModelLoadError, 503))
ItemPath = Annotated[int, Path(ge=0, le=MAX_ITEM_ID)]


def _error_status(error: ClipforgeError) -> int:
    return next((status for kind, status in _STATUS if isinstance(error, kind)), 400)


def _add_error_handlers(app: FastAPI) -> None:
    async def library_error(request: Request, exc: ClipforgeError) -> JSONResponse:
        return JSONResponse({"detail": str(exc)}, status_code=_error_status(exc))

    async def invalid_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        # Only where and what: echoing the input back could return megabytes of base64.
        errors = [{"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()]
        return JSONResponse({"detail": errors}, status_code=422)

    async def unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error in %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

    app.add_exception_handler(ClipforgeError, library_error)
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(Exception, unexpected)


def _item_image(collection, item_id: int) -> tuple[bytes, str]:
    data, _ = read_item_file(collection, item_id)
    mime = image_mime(data)
    if mime is None:
        raise NotFoundError(f"collection {collection.name} has no image file for item {item_id}")
    return data, mime


def _add_base_routes(app: FastAPI, service: Service, metrics: Metrics) -> None:
    limits = service.limits

    @app.get("/items/{collection}/{item_id}/thumbnail", name="item_thumbnail", tags=["items"],
             response_class=Response, responses={200: {"content": {"image/jpeg": {}}}})
    async def item_thumbnail(collection: str, item_id: ItemPath) -> Response:
        """A JPEG thumbnail of an image item of the collection."""
        served = service.get(collection)
        data = await service.run(service.thumbnails.get, served.collection, item_id, limits.max_image_pixels)
        return Response(data, media_type="image/jpeg", headers=_FILE_HEADERS)

    @app.get("/items/{collection}/{item_id}/image", name="item_image", tags=["items"],
             response_class=Response, responses={200: {"content": {"image/*": {}}}})
    async def item_image(collection: str, item_id: ItemPath) -> Response:
        """The original file of an image item of the collection."""
        served = service.get(collection)
        data, mime = await service.run(_item_image, served.collection, item_id)
        return Response(data, media_type=mime, headers=_FILE_HEADERS)

    @app.get("/healthz", response_model=Status, tags=["health"])
    async def healthz() -> Status:
        """Liveness: the process answers."""
        return Status(status="ok")

    @app.get("/readyz", response_model=Status, response_model_exclude_none=True, tags=["health"],
             responses={503: {"model": Status}})
    async def readyz():
        """Readiness: every model is loaded and every index warm."""
        if service.ready:
            return Status(status="ready")
        status = Status(status="failed", detail=service.load_error) if service.load_error else Status(status="loading")
        return JSONResponse(status.model_dump(exclude_none=True), status_code=503)

    @app.get("/metrics", tags=["health"], response_class=Response)
    async def prometheus_metrics() -> Response:
        """Prometheus metrics: request counts and latency by route, text batch sizes."""
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html", headers=_PAGE_HEADERS)

    app.mount("/static", StaticFiles(directory=STATIC), name="static")


def _install_openapi(app: FastAPI) -> None:
    def openapi() -> dict:
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            bodies = [SearchRequest, EmbedRequest, ClassifyRequest, AddTextsRequest, compat.KnnRequest, compat.MetadataRequest]
            add_body_schemas(schema, bodies, [SearchRequest, ClassifyRequest])
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi


def create_app(settings: ServeSettings) -> FastAPI:
    """The app serving ``settings.collections``; models load when it starts."""
    metrics = Metrics()
    service = Service(settings, on_batch=metrics.batch_size.observe)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.start()
        try:
            yield
        finally:
            service.close()

    app = FastAPI(title="clipforge", version=__version__, lifespan=lifespan,
                  description="Search, classify and embed with CLIP-style models over clipforge collections.")
    app.state.service = service
    _add_error_handlers(app)
    app.include_router(api.make_router(service))
    app.include_router(compat.make_router(service))
    _add_base_routes(app, service, metrics)
    _install_openapi(app)
    # The last added is the outermost: metrics see every answer, the deadline covers the work.
    app.add_middleware(DeadlineMiddleware, seconds=settings.limits.request_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
