"""A served collection for the reliability tests of the HTTP API.

The collection and the server are the serve tests' own (``build_collection``, ``start``):
real images, real texts, a tiny real model, uvicorn on loopback.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from serve.conftest import build_collection, start

from clipforge.serve.runner import BackgroundServer


@contextmanager
def served(root, spec: str, **settings) -> Iterator[BackgroundServer]:
    """A server over a fresh collection under ``root``; ``settings`` go to ``ServeSettings``."""
    running = start(build_collection(root, spec), **settings)
    try:
        yield running
    finally:
        running.stop()
