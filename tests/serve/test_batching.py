"""The text batcher, over a real (tiny, fp32) encoder."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from clipforge.errors import InputError
from clipforge.models import load_encoder
from clipforge.serve.batching import ServingEncoder, TextBatcher
from clipforge.serve.settings import BatchSettings

TEXTS = [f"a photo of a {word}" for word in "dog cat bird car apple beach night red".split()]


@pytest.fixture(scope="module")
def encoder(tiny_clip_spec):
    return load_encoder(tiny_clip_spec, precision="fp32")


class Recorder:
    """The encoder's own encode_texts, remembering how many texts each call got."""

    def __init__(self, encoder):
        self.encoder, self.sizes, self.fail = encoder, [], False

    def __call__(self, texts):
        self.sizes.append(len(texts))
        if self.fail:
            raise InputError("the model is unhappy")
        return self.encoder.encode_texts(texts)


def submit_together(batcher: TextBatcher, texts: list[str]) -> list:
    barrier = threading.Barrier(len(texts))
    futures = [None] * len(texts)

    def go(i):
        barrier.wait()
        futures[i] = batcher.submit(texts[i])

    threads = [threading.Thread(target=go, args=(i,)) for i in range(len(texts))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return futures


def test_concurrent_texts_share_calls_and_get_their_own_vectors(encoder):
    recorder = Recorder(encoder)
    batcher = TextBatcher(recorder, max_batch=32, max_wait_ms=200)
    try:
        futures = submit_together(batcher, TEXTS)
        vectors = np.stack([f.result(timeout=30) for f in futures])
    finally:
        batcher.close()
    assert sum(recorder.sizes) == len(TEXTS) and len(recorder.sizes) < len(TEXTS)
    assert np.allclose(vectors, np.stack([encoder.encode_texts([t])[0] for t in TEXTS]), atol=1e-5)


def test_batches_never_exceed_max_batch(encoder):
    recorder = Recorder(encoder)
    batcher = TextBatcher(recorder, max_batch=3, max_wait_ms=100)
    try:
        vectors = batcher.encode(TEXTS)
    finally:
        batcher.close()
    assert max(recorder.sizes) <= 3 and sum(recorder.sizes) == len(TEXTS)
    assert np.allclose(vectors, encoder.encode_texts(TEXTS), atol=1e-5)


def test_a_failed_call_fails_every_waiting_query(encoder):
    recorder = Recorder(encoder)
    recorder.fail = True
    batcher = TextBatcher(recorder, max_batch=8, max_wait_ms=100)
    try:
        futures = submit_together(batcher, TEXTS[:4])
        for future in futures:
            with pytest.raises(InputError, match="unhappy"):
                future.result(timeout=30)
        recorder.fail = False
        assert batcher.encode(["still working"]).shape == (1, encoder.dim)
    finally:
        batcher.close()


def test_a_cancelled_query_is_not_encoded(encoder):
    recorder = Recorder(encoder)
    batcher = TextBatcher(recorder, max_batch=8, max_wait_ms=300)
    try:
        dropped = batcher.submit("never mind")
        kept = batcher.submit("keep me")
        assert dropped.cancel()
        assert kept.result(timeout=30).shape == (encoder.dim,)
    finally:
        batcher.close()
    assert recorder.sizes == [1]


def test_closed_batcher_refuses_work(encoder):
    batcher = TextBatcher(Recorder(encoder))
    batcher.close()
    with pytest.raises(RuntimeError):
        batcher.submit("late")


@pytest.mark.parametrize("enabled", [True, False])
def test_serving_encoder_matches_the_encoder(encoder, enabled):
    serving = ServingEncoder(encoder, BatchSettings(enabled=enabled))
    try:
        assert (serving.batcher is not None) == enabled
        assert np.allclose(serving.encode_texts(TEXTS[:3]), encoder.encode_texts(TEXTS[:3]), atol=1e-5)
        assert np.allclose(serving.encode_texts("one"), encoder.encode_texts(["one"]), atol=1e-5)
        assert serving.dim == encoder.dim and serving.preprocess is encoder.preprocess
        with pytest.raises(InputError):
            serving.encode_texts([3])
    finally:
        serving.close()
