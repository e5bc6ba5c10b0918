"""A request past its deadline is answered 408, and the work done for it stops too.

The server runs the work of a request in worker threads. Answering 408 used to abandon
only the waiting: a timed-out /classify kept the model busy with every one of its prompts,
and the queries queued behind them waited for all of them. The deadline now travels with
the request into its threads, and the work checks it between model calls, images and steps.

The server runs in this process, so its CPU time is this process's CPU time.
"""

from __future__ import annotations

import base64
import io
import time

import httpx
import numpy as np
import pytest
from api_server import served
from PIL import Image

from clipforge.serve.settings import BatchSettings, Limits

DEADLINE = 0.5


@pytest.fixture(scope="module")
def server(tmp_path_factory, tiny_clip_spec):
    # One text per model call, so that a /classify of many prompts is many model calls to
    # count; limits wide enough that it takes far longer than the deadline.
    limits = Limits(request_seconds=DEADLINE, max_labels=2000, max_prompts=20_000)
    with served(tmp_path_factory.mktemp("deadline"), tiny_clip_spec, limits=limits,
                batching=BatchSettings(max_batch=1)) as running:
        yield running


@pytest.fixture
def client(server):
    with httpx.Client(base_url=server.url, timeout=60) as http:
        yield http


def png(size: tuple[int, int]) -> bytes:
    """A smooth image: small to send, as slow to decode as any of its size."""
    w, h = size
    ramp = (np.add.outer(np.arange(h), np.arange(w)) % 256).astype(np.uint8)
    out = io.BytesIO()
    Image.fromarray(ramp, "L").convert("RGB").save(out, "PNG")
    return out.getvalue()


def model_calls(client) -> float:
    return float(client.get("/metrics").text.split("clipforge_text_batch_size_count ")[1].split()[0])


def cpu_seconds_over(seconds: float) -> float:
    started = time.process_time()
    time.sleep(seconds)
    return time.process_time() - started


def test_a_timed_out_classify_stops_calling_the_model(client):
    labels, templates = [f"label {i}" for i in range(2000)], [f"{{}}, take {j}" for j in range(10)]
    image = base64.b64encode(png((32, 32))).decode()
    response = client.post("/classify", json={"image": image, "labels": labels, "templates": templates})
    assert response.status_code == 408 and "limit" in response.json()["detail"]
    time.sleep(0.3)
    first = model_calls(client)
    time.sleep(1.0)
    second = model_calls(client)  # the one call in flight at the deadline may end in between,
    time.sleep(1.0)               # late on a loaded machine; after it, nothing more
    third = model_calls(client)
    print(f"model calls: {first:.0f}, {second:.0f} and {third:.0f} at 0.3, 1.3 and 2.3 s after the 408, "
          f"of {len(labels) * len(templates)}")
    assert second <= first + 1 and third == second and third < len(labels) * len(templates) / 2
    # Nothing of it is left in the queue ahead of the next query.
    started = time.monotonic()
    assert client.post("/search", json={"text": "a red car"}).status_code == 200
    assert time.monotonic() - started < DEADLINE


def test_a_timed_out_embed_stops_decoding(client):
    images = [base64.b64encode(png((2000, 2000))).decode()] * 64  # each one decoded anew
    started = time.monotonic()
    response = client.post("/embed", json={"images": images})
    assert response.status_code == 408 and time.monotonic() - started < DEADLINE + 1.0
    time.sleep(0.3)  # the image being decoded may finish
    busy = cpu_seconds_over(1.0)
    print(f"CPU seconds used in the second after: {busy:.3f}")
    assert busy < 0.2
