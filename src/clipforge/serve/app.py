"""The FastAPI application: ``create_app(ServeSettings(collections=("pics",)))``.

Routes: the API (``api.py``), the clip-retrieval protocol (``compat.py``), and item files,
health, metrics and the web page at ``/`` (``routes.py``). Every error a client can cause is a 4xx with a
one-line ``detail``; anything else is logged and answered with a bare 500, never a traceback.
"""

from __future__ import annotations

import logging
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles

from .. import __version__
from ..errors import ClipforgeError, CollectionError, ModelLoadError, NotFoundError
from . import api, compat, routes
from .docs import install_docs
from .middleware import (
    BodyLimitMiddleware,
    DeadlineMiddleware,
    Metrics,
    MetricsMiddleware,
)
from .openapi import install_openapi
from .schemas import AddTextsRequest, ClassifyRequest, EmbedRequest, SearchRequest
from .service import Service
from .settings import ServeSettings

log = logging.getLogger(__name__)
_STATUS = ((NotFoundError, 404), (CollectionError, 409), (ModelLoadError, 503))


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

    app = FastAPI(title="clipforge", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Search, classify and embed with CLIP-style models over clipforge collections.")
    app.state.service, app.state.metrics = service, metrics
    _add_error_handlers(app)
    for module in (api, compat, routes):
        app.include_router(module.router)
    app.mount("/static", StaticFiles(directory=routes.STATIC), name="static")
    install_docs(app)
    install_openapi(app, [SearchRequest, EmbedRequest, ClassifyRequest, AddTextsRequest, compat.KnnRequest,
                          compat.MetadataRequest], [SearchRequest, ClassifyRequest], settings.limits,
                    {served.collection.dim for served in service.served.values()})
    # The last added is the outermost: metrics see every answer, the deadline covers the work.
    app.add_middleware(DeadlineMiddleware, seconds=settings.limits.request_seconds)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.limits.max_body_bytes)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.cors_origins), allow_methods=["GET", "POST"],
                           allow_headers=["Content-Type"])
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    return app
