"""The background server answers requests on a kept-alive connection without delay."""

from __future__ import annotations

import statistics
import time

import httpx
from fastapi import FastAPI

from clipforge.serve.runner import BackgroundServer


def test_kept_alive_requests_are_not_held_back():
    # Without TCP_NODELAY each request on a reused connection waited ~40 ms for a delayed ACK.
    app = FastAPI()
    app.get("/ping")(lambda: {"ok": True})
    with BackgroundServer(app) as server, httpx.Client(base_url=server.url) as http:
        http.get("/ping")
        times = []
        for _ in range(20):
            started = time.perf_counter()
            assert http.get("/ping").status_code == 200
            times.append(time.perf_counter() - started)
    assert statistics.median(times) < 0.02, times
