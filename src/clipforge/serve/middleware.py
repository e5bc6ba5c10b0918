"""ASGI middleware: request metrics, a body size limit and a per-request deadline.

Plain ASGI rather than Starlette's BaseHTTPMiddleware: it streams, and it sees the status of
every response, including the ones the other layers produce.
"""

from __future__ import annotations

import asyncio
import json
import time

from fastapi import HTTPException
from prometheus_client import CollectorRegistry, Counter, Histogram

from .deadline import DeadlineExceeded, request_deadline

_LATENCY_BUCKETS = (0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0, 10.0, 30.0)


class Metrics:
    """Prometheus metrics of one app, in its own registry (two apps in a process do not clash)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("clipforge_http_requests_total", "HTTP requests by route and status",
                                ["method", "route", "status"], registry=self.registry)
        self.latency = Histogram("clipforge_http_request_duration_seconds", "HTTP request latency by route",
                                 ["method", "route"], buckets=_LATENCY_BUCKETS, registry=self.registry)
        self.batch_size = Histogram("clipforge_text_batch_size", "texts encoded per model call by the batcher",
                                    buckets=(1, 2, 4, 8, 16, 32, 64, 128), registry=self.registry)


def _route_label(scope) -> str:
    # The route template, not the raw path: ids in paths would make one series per item.
    route = scope.get("route")
    return getattr(route, "path", None) or "unmatched"


async def send_json(send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


class MetricsMiddleware:
    def __init__(self, app, metrics: Metrics):
        self.app, self.metrics = app, metrics

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started, status = time.perf_counter(), 500

        async def record_status(message):
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record_status)
        finally:
            route = _route_label(scope)
            self.metrics.requests.labels(scope["method"], route, str(status)).inc()
            self.metrics.latency.labels(scope["method"], route).observe(time.perf_counter() - started)


class BodyTooLarge(HTTPException):
    def __init__(self, limit: int):
        super().__init__(413, f"request body is larger than the {limit} byte limit")


class BodyLimitMiddleware:
    """413 for a body past the limit: at once from Content-Length, or as soon as it streams past."""

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
            if not length.isdigit():
                return await send_json(send, 400, "bad Content-Length")
            return await send_json(send, 413, BodyTooLarge(self.max_bytes).detail)
        received = 0

        async def counting_receive():
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            if received > self.max_bytes:
                raise BodyTooLarge(self.max_bytes)  # raised inside the endpoint's read: handled as a 413
            return message

        await self.app(scope, counting_receive, send)


class DeadlineMiddleware:
    """A request that takes longer than ``seconds`` is answered with a 408, and its work stops."""

    def __init__(self, app, seconds: float):
        self.app, self.seconds = app, seconds

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        response_started = False

        async def watch(message):
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        # The deadline ends with the request however it ends (answered, timed out, client
        # gone), and the work still running for it in worker threads stops at its next check.
        with request_deadline(self.seconds):
            try:
                await asyncio.wait_for(self.app(scope, receive, watch), self.seconds)
            except asyncio.TimeoutError:
                if not response_started:
                    await send_json(send, 408, DeadlineExceeded(self.seconds).detail)
