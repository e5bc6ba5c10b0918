"""A server keeps its indexes up to date from a background thread while it answers."""

from __future__ import annotations

import time

import httpx
import numpy as np

from clipforge.index.ann import background
from clipforge.index.ann.policy import FOLD_AT
from clipforge.index.collection import Collection
from clipforge.index.store import NewItem

from .conftest import CAPTIONS, build_collection, start


def _commit_texts(path, n: int) -> None:
    """``n`` texts committed with random vectors, as a bulk import would (no model runs)."""
    with Collection.open(path) as coll, coll.writing():
        vectors = np.random.default_rng(0).standard_normal((n, coll.dim)).astype(np.float32)
        first = coll.append_vectors(vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
        coll.commit([NewItem(kind="text", key=f"text:id:bulk{i}", text=f"bulk {i}", vector_row=first + i)
                     for i in range(n)])


def test_new_items_are_folded_in_by_the_server_while_it_answers(tmp_path, tiny_clip_spec, monkeypatch):
    monkeypatch.setattr(background, "INTERVAL_SECONDS", 0.2)
    path = build_collection(tmp_path, tiny_clip_spec)
    server = start(path)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            def text_index():
                return next(i for i in http.get("/collections").json()[0]["index"] if i["kind"] == "text")

            assert text_index()["indexed"] == len(CAPTIONS)
            _commit_texts(path, FOLD_AT + 1)  # another process adds many: due for a fold
            response = http.post("/search", json={"text": "bulk", "target": "text", "k": 5})
            assert response.status_code == 200 and len(response.json()["results"]) == 5  # answered at once
            deadline = time.monotonic() + 60
            while text_index()["fresh"] and time.monotonic() < deadline:
                time.sleep(0.2)
            index = text_index()
            assert (index["indexed"], index["fresh"]) == (len(CAPTIONS) + FOLD_AT + 1, 0)
    finally:
        server.stop()
