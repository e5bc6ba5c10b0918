"""A real collection of real image files and texts, served over real HTTP on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import make_photo

from clipforge.index.collection import Collection
from clipforge.serve import ServeSettings, create_app
from clipforge.serve.runner import BackgroundServer

CAPTIONS = ["a red car", "a blue bird", "a dog on the beach", "a cat at night", "a green apple"]


def build_collection(root: Path, spec: str, name: str = "pics") -> Path:
    photos = root / f"{name}-photos"
    for i in range(10):
        make_photo(photos / f"img_{i:02d}.jpg", seed=i)
    make_photo(photos / "nested" / "deep.png", seed=100)
    make_photo(photos / "wide.jpg", size=(120, 40), seed=200)
    where = root / "collections" / name
    with Collection.create(where, model=spec) as collection:
        collection.add_images([photos], workers=1)
        collection.add_texts(CAPTIONS, metadata=[{"source": "captions", "n": i} for i in range(len(CAPTIONS))])
    return where


@pytest.fixture(scope="session")
def collection_path(tmp_path_factory, tiny_clip_spec) -> Path:
    return build_collection(tmp_path_factory.mktemp("serve"), tiny_clip_spec)


def start(collection_path: Path, **overrides) -> BackgroundServer:
    settings = ServeSettings(collections=(str(collection_path),), load_in_background=False, **overrides)
    return BackgroundServer(create_app(settings)).start()


@pytest.fixture(scope="session")
def server(collection_path):
    """The default server, shared by every test that only reads."""
    running = start(collection_path)
    yield running
    running.stop()


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=30) as http:
        yield http


def photo_bytes(tmp_path: Path, seed: int = 0, size=(64, 48), fmt: str = "JPEG") -> bytes:
    return make_photo(tmp_path / f"query-{seed}.{fmt.lower()}", size=size, seed=seed, fmt=fmt).read_bytes()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_serve(collection: Path, home: Path, *options: str) -> tuple[subprocess.Popen, int]:
    """``clipforge serve`` of ``collection`` in a process of its own, ready to answer."""
    port = free_port()
    exe = Path(sys.executable).with_name("clipforge")
    env = dict(os.environ, CLIPFORGE_HOME=str(home))
    proc = subprocess.Popen([str(exe), "serve", "-c", str(collection), "--port", str(port), *options],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.communicate()
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz").status_code == 200:
                return proc, port
        except httpx.TransportError:
            pass
        assert time.monotonic() < deadline, "the server never became ready"
        time.sleep(0.2)


def stop_serve(proc: subprocess.Popen) -> str:
    """Stop it as Ctrl-C does; its stderr."""
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return err
