"""API docs at /docs that work offline.

FastAPI's default /docs page loads Swagger UI from a CDN, which a machine without network
cannot reach. The ``swagger-ui-bundle-v2`` package ships Swagger UI 5 (which reads the
OpenAPI 3.1 that FastAPI writes); its files are served from this server instead. Without
that package the default page is used.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles

ASSETS = "/docs-assets"


def swagger_ui_dir() -> Path | None:
    try:
        from swagger_ui_bundle import swagger_ui_path
    except ImportError:
        return None
    path = Path(str(swagger_ui_path))
    return path if (path / "swagger-ui-bundle.js").is_file() else None


def install_docs(app: FastAPI) -> None:
    """Serve /docs, from local files where possible; call on an app created with ``docs_url=None``."""
    local = swagger_ui_dir()
    assets = {}
    if local is not None:
        app.mount(ASSETS, StaticFiles(directory=local), name="docs-assets")
        assets = {"swagger_js_url": f"{ASSETS}/swagger-ui-bundle.js", "swagger_css_url": f"{ASSETS}/swagger-ui.css",
                  "swagger_favicon_url": f"{ASSETS}/favicon-32x32.png"}

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(openapi_url=app.openapi_url, title=f"{app.title} API", **assets)
