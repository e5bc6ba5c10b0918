"""A served collection for the reliability tests of the HTTP API.

The collection and the server are the serve tests' own (``build_collection``, ``start``):
real images, real texts, a tiny real model, uvicorn on loopback.
"""

from __future__ import annotations

import subprocess
import sys
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


# The server of ``served_in_child``: what it writes to stderr is what a user would see.
_CHILD = """
import sys
from clipforge.serve import Limits, ServeSettings, create_app
from clipforge.serve.runner import BackgroundServer

limits = Limits(**{name: int(value) for name, value in (arg.split("=") for arg in sys.argv[2:])})
settings = ServeSettings(collections=(sys.argv[1],), load_in_background=False, limits=limits)
with BackgroundServer(create_app(settings)) as server:
    print(server.url, flush=True)
    sys.stdin.read()  # serve until the parent closes stdin
"""


@contextmanager
def served_in_child(collection, stderr_path, **limits: int) -> Iterator[str]:
    """The URL of a server over ``collection`` in a child process whose stderr goes to
    ``stderr_path``; ``limits`` are integer ``Limits`` fields."""
    args = [f"{name}={value}" for name, value in limits.items()]
    with open(stderr_path, "wb") as stderr:
        child = subprocess.Popen([sys.executable, "-c", _CHILD, str(collection), *args],
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=stderr)
    try:
        url = child.stdout.readline().decode().strip()
        assert url.startswith("http://"), f"the server did not start: {open(stderr_path).read()[-2000:]}"
        yield url
    finally:
        child.stdin.close()
        child.wait(timeout=60)
