"""Searches that arrive together run as one index search (``serve.searching``): each caller
gets exactly the hits it would get alone, and a bad search fails alone."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clipforge import Collection
from clipforge.errors import InputError
from clipforge.serve.searching import BatchedSearch
from clipforge.serve.settings import BatchSettings


@pytest.fixture(scope="module")
def collection(collection_path):
    with Collection.open(collection_path, precision="fp32") as opened:
        yield opened


def _together(calls: list) -> list:
    """Run ``calls`` at once from as many threads; their results or exceptions, in order."""
    barrier, out = threading.Barrier(len(calls)), [None] * len(calls)

    def go(i):
        barrier.wait()
        try:
            out[i] = calls[i]()
        except Exception as e:  # noqa: BLE001
            out[i] = e

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(calls))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return out


def test_searches_together_share_calls_and_get_their_own_hits(collection):
    calls = []

    def read(fn):
        calls.append(1)
        return fn(collection)

    searcher = BatchedSearch(read, BatchSettings(max_batch=32, max_wait_ms=200), "pics")
    vectors = collection.query_encoder.encode_texts([f"a photo number {i}" for i in range(8)])
    pages = [dict(k=3), dict(k=3), dict(k=2, offset=1), dict(k=3, target="text"), dict(k=3),
             dict(k=3, where="n>=2", target="text"), dict(k=3), dict(k=2, offset=1)]
    try:
        found = _together([lambda i=i: searcher.search(vectors[i], **pages[i]) for i in range(8)])
    finally:
        searcher.close()
    assert len(calls) < 8, "no two searches shared a call"
    for i, hits in enumerate(found):
        alone = collection.search_vectors(vectors[i][None], **pages[i])[0]
        assert [(h.id, h.score) for h in hits] == [(h.id, h.score) for h in alone] and hits
        assert hits.has_more == alone.has_more


def test_a_bad_search_fails_alone(collection):
    searcher = BatchedSearch(lambda fn: fn(collection), BatchSettings(max_batch=32, max_wait_ms=200), "pics")
    vector = collection.query_encoder.encode_texts(["a cat"])[0]
    try:
        found = _together([lambda: searcher.search(vector, k=3, where="=2023"), lambda: searcher.search(vector, k=3),
                           lambda: searcher.search(vector, k=0)])
    finally:
        searcher.close()
    assert isinstance(found[0], InputError) and isinstance(found[2], InputError)
    assert [h.id for h in found[1]] == [h.id for h in collection.search_vectors(vector[None], k=3)[0]]


def test_without_batching_it_searches_in_the_callers_thread(collection):
    searcher = BatchedSearch(lambda fn: fn(collection), BatchSettings(enabled=False), "pics")
    vector = collection.query_encoder.encode_texts(["a dog"])[0]
    hits = searcher.search(vector, k=4)
    assert [h.id for h in hits] == [h.id for h in collection.search_vectors(vector[None], k=4)[0]]
    assert np.isfinite([h.score for h in hits]).all()
