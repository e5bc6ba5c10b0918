"""Thin images (1 x 100,000 pixels and the like) are answered 200 or 4xx, in bounded memory.

A thin PNG is a few hundred bytes and far under the pixel limit, but scaling its short side
up to the model's input asks for gigabytes (1 x 2,000,000 at 224 on the short side is 448
million rows); the server answered 500 after a MemoryError, or took the machine's memory.
The server runs in this process, so its peak RSS is this process's peak RSS.
"""

from __future__ import annotations

import base64
import io
import resource
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from api_server import served
from PIL import Image

GROWTH_LIMIT_MB = 500
SIZES = [(1, 100_000), (100_000, 1), (1, 2_000_000)]


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("thin"), tiny_clip_spec) as server:
        # A connection per request: after a 500 the server drops the connection it came on.
        with httpx.Client(base_url=server.url, timeout=120, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            yield http


def thin_png(size: tuple[int, int]) -> bytes:
    out = io.BytesIO()
    Image.new("L", size, 128).save(out, "PNG")
    return out.getvalue()


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # kB on Linux


@contextmanager
def address_space_cap(extra_bytes: int):
    """Cap this process's address space at its current size plus ``extra_bytes``: a request
    that asks for gigabytes gets a MemoryError instead of the shared machine's memory."""
    current = int(Path("/proc/self/statm").read_text().split()[0]) * resource.getpagesize()
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    resource.setrlimit(resource.RLIMIT_AS, (current + extra_bytes, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def requests_for(data: bytes) -> dict[str, tuple[str, dict]]:
    encoded = base64.b64encode(data).decode()
    return {
        "search (upload)": ("/search", {"files": {"image": ("thin.png", data, "image/png")}}),
        "search": ("/search", {"json": {"image": encoded}}),
        "embed": ("/embed", {"json": {"images": [encoded]}}),
        "classify": ("/classify", {"json": {"image": encoded, "labels": ["line", "dot"]}}),
        "knn-service": ("/knn-service", {"json": {"image": encoded}}),
    }


@pytest.mark.parametrize("size", SIZES, ids=lambda s: f"{s[0]}x{s[1]}")
def test_thin_images_get_an_answer_in_bounded_memory(client, size):
    data = thin_png(size)
    assert len(data) < 4_000
    client.get("/healthz")
    # The peak so far belongs to other tests; start counting from now where Linux allows.
    Path("/proc/self/clear_refs").write_text("5")
    before = peak_rss_mb()
    with address_space_cap(4 << 30):
        answers = {name: client.post(path, **kwargs) for name, (path, kwargs) in requests_for(data).items()}
    growth = peak_rss_mb() - before
    print(f"{size[0]}x{size[1]} ({len(data)} bytes): peak RSS grew {growth:.0f} MB;",
          {name: r.status_code for name, r in answers.items()})
    for name, response in answers.items():
        assert response.status_code == 200 or 400 <= response.status_code < 500, (name, response.text)
        assert "Traceback" not in response.text
    assert growth < GROWTH_LIMIT_MB
