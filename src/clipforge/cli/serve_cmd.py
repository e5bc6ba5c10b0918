"""``clipforge serve``: collections as an HTTP API and a web page."""

from __future__ import annotations

import ipaddress
import os

import click

from ..discovery import local_url
from ..errors import InputError
from .common import model_options
from .output import err_console

# OpenMP's default is to spin-wait between parallel regions. Measured on this project's
# 2-core machines under other load: the spinning workers of the model thread took the cores
# the request threads needed, and batched latency grew up to tenfold; with passive waiting
# it stayed flat (and unbatched p50 improved too). This module is imported before the
# command runs, so before torch loads; a value the user set wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@click.command()
@click.option("-c", "--collection", "collections", multiple=True, required=True, metavar="NAME|PATH",
              help="Collection to serve (repeat for several); a name under $CLIPFORGE_HOME or a path.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8000, show_default=True, help="Port to listen on.")
@model_options
@click.option("--no-batching", is_flag=True, help="Encode each text query on its own (no micro-batching).")
@click.option("--batch-size", type=click.IntRange(1, 1024), default=32, show_default=True,
              help="Most text queries encoded in one model call.")
@click.option("--batch-wait-ms", type=click.FloatRange(0, 1000), default=2.0, show_default=True,
              help="How long a text query waits for others to share its model call.")
@click.option("--write-token", envvar="CLIPFORGE_WRITE_TOKEN", default=None, metavar="TOKEN",
              help="Allow adding texts by requests bearing this token (or set $CLIPFORGE_WRITE_TOKEN).")
@click.option("--allow-image-urls", is_flag=True,
              help="Let /knn-service fetch image_url (off by default: clients could make the server fetch any URL).")
@click.option("--cors-origin", "cors_origins", multiple=True, metavar="ORIGIN",
              help="Browser origin allowed to call the API, e.g. a separately hosted clip-retrieval front end.")
@click.option("--max-upload-mb", type=click.FloatRange(0.1, 1024), default=16.0, show_default=True,
              help="Largest uploaded image.")
@click.option("--max-k", type=click.IntRange(1, 100_000), default=1000, show_default=True,
              help="Most results per request.")
@click.option("--request-timeout", type=click.FloatRange(0.1, 3600), default=30.0, show_default=True,
              help="Seconds a request may take before it is answered with 408.")
@click.option("--log-level", type=click.Choice(["error", "warning", "info", "debug"]), default="info", show_default=True,
              help="What the server logs; info includes a line per request.")
def serve(collections, host, port, device, precision, no_batching, batch_size, batch_wait_ms, write_token,
          allow_image_urls, cors_origins, max_upload_mb, max_k, request_timeout, log_level):
    """Serve collections: a search page at /, the API at /docs, and clip-retrieval's /knn-service."""
    from ..serve.app import create_app
    from ..serve.runner import listen, serve_forever
    from ..serve.settings import BatchSettings, Limits, ServeSettings

    settings = ServeSettings(
        collections=tuple(collections), host=host, port=port, device=device, precision=precision,
        batching=BatchSettings(enabled=not no_batching, max_batch=batch_size, max_wait_ms=batch_wait_ms),
        limits=Limits(max_upload_bytes=int(max_upload_mb * 1024 * 1024), max_k=max_k, request_seconds=request_timeout),
        write_token=write_token or None, allow_image_urls=allow_image_urls, cors_origins=tuple(cors_origins),
    )
    app = create_app(settings)  # opens the collections: a wrong name fails here, before binding
    try:
        sock = listen(host, port)
    except OSError as e:
        raise InputError(f"cannot listen on {host}:{port}: {e.strerror or e}") from None
    if not _is_loopback(host):
        err_console.print(f"[yellow]warning:[/] listening on {host}: reachable from other machines")
    url = local_url(host, sock.getsockname()[1])
    err_console.print(f"serving {', '.join(collections)} at {url}/ (API docs at /docs)")
    served = app.state.service.served.values()
    serve_forever(app, sock, announce=[(s.collection.path, s.name) for s in served], log_level=log_level,
                  runs=(device, precision))
