"""Query batching: concurrent text queries share one forward pass, concurrent searches one scan.

A text encoder spends nearly the same time on one text as on thirty-two, and an index reads
its vectors once for a batch of queries, so under load the server gathers the work that is
waiting (up to ``max_batch`` items, or whatever arrived within ``max_wait_ms`` of the first)
and does it in one call: ``Batcher``, with ``TextBatcher`` for texts and
``serve.searching`` for searches. At low load an item waits at most ``max_wait_ms``.

``ServingEncoder`` is what the search library sees: the collection's encoder, with texts
routed through the batcher and every model call serialised by one lock. The lock is
deliberate: torch already spreads one call over every core, and two calls at once only fight
over them.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import queue
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import Future, wait

import numpy as np

from ..errors import InputError
from .deadline import Deadline, check_deadline, current_deadline

log = logging.getLogger(__name__)

_STOP = object()


class Batcher:
    """A queue of items and one worker thread that processes them in batches.

    ``process(items)`` returns one result per item, in order; a result that is an exception
    is raised to that item's caller alone, so that one bad item does not fail the others it
    shared a batch with."""

    def __init__(self, process: Callable[[list], Sequence], max_batch: int = 32,
                 max_wait_ms: float = 2.0, on_batch: Callable[[int], None] | None = None, name: str = "items"):
        if max_batch < 1:
            raise ValueError(f"max_batch must be at least 1, got {max_batch}")
        self._process = process
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000.0
        self._on_batch = on_batch
        self._queue: queue.SimpleQueue = queue.SimpleQueue()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=f"batcher-{name}", daemon=True)
        self._thread.start()

    def submit(self, item, deadline: Deadline | None = None) -> Future:
        """A future that resolves to ``item``'s result; past ``deadline`` it is cancelled
        instead of processed."""
        if self._closed:
            raise RuntimeError(f"the {self._thread.name} batcher is closed")
        future: Future = Future()
        self._queue.put((item, future, deadline))
        return future

    def call(self, items: Sequence) -> list:
        """The results of ``items`` (blocking), sharing calls with whatever else is queued.

        Past the request's deadline it raises, and the items not yet processed are dropped
        from the queue rather than left to delay the work behind them."""
        deadline = current_deadline()
        futures = [self.submit(item, deadline) for item in items]
        try:
            _wait_within_deadline(futures)
        except BaseException:
            for future in futures:
                future.cancel()  # only those the worker has not taken yet
            raise
        return [f.result() for f in futures]

    async def run_async(self, item):
        """``item``'s result, awaited on the event loop: no worker thread waits for it. A
        request cancelled meanwhile (its deadline, a client gone) drops it from the queue."""
        return await asyncio.wrap_future(self.submit(item, current_deadline()))

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._queue.put(_STOP)
            self._thread.join(timeout=10)

    def _gather(self, first) -> tuple[list, bool]:
        batch, deadline, stop = [first], time.monotonic() + self.max_wait, False
        while len(batch) < self.max_batch:
            remaining = deadline - time.monotonic()
            try:
                entry = self._queue.get(timeout=remaining) if remaining > 0 else self._queue.get_nowait()
            except queue.Empty:
                break
            if entry is _STOP:
                stop = True
                break
            batch.append(entry)
        return batch, stop

    def _run(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch, stop = self._gather(first)
            self._run_batch(batch)
            if stop:
                return

    def _run_batch(self, batch: list[tuple[object, Future, Deadline | None]]) -> None:
        # An item whose request is out of time, or whose caller gave up, is dropped, not
        # processed: the worker drops a timed-out request's thousands of prompts as it meets
        # them, without waiting for that request's thread to cancel them one by one.
        live = []
        for item, future, deadline in batch:
            if deadline is not None and deadline.remaining() <= 0.0:
                future.cancel()
            elif future.set_running_or_notify_cancel():
                live.append((item, future))
        if not live:
            return
        try:
            results = self._process([item for item, _ in live])
        except BaseException as error:  # every waiting caller must hear about it
            for _, future in live:
                future.set_exception(error)
            return
        if self._on_batch:
            self._on_batch(len(live))
        for (_, future), result in zip(live, results, strict=True):
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)


class TextBatcher(Batcher):
    """Texts in, their L2-normalised vectors out: one model call per batch."""

    def __init__(self, encode: Callable[[list[str]], np.ndarray], max_batch: int = 32,
                 max_wait_ms: float = 2.0, on_batch: Callable[[int], None] | None = None, name: str = "texts"):
        super().__init__(encode, max_batch, max_wait_ms, on_batch, name)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Encode ``texts`` (blocking), sharing model calls with whatever else is queued."""
        vectors = self.call(texts)
        return np.stack(vectors) if vectors else np.zeros((0, 0), np.float32)


def _wait_within_deadline(futures: list[Future]) -> None:
    deadline = current_deadline()
    pending = set(futures)
    while pending:
        _, pending = wait(pending, timeout=None if deadline is None else deadline.remaining())
        if pending:
            deadline.check()


class ServingEncoder:
    """An encoder for the library's query functions, with batching and one model call at a time."""

    def __init__(self, encoder, batcher_settings=None, on_batch: Callable[[int], None] | None = None):
        self.encoder = encoder
        self.lock = threading.Lock()
        self.batcher: TextBatcher | None = None
        if batcher_settings is not None and batcher_settings.enabled:
            self.batcher = TextBatcher(self._encode_now, batcher_settings.max_batch, batcher_settings.max_wait_ms,
                                       on_batch=on_batch, name=str(encoder.spec))

    def _encode_now(self, texts: list[str], batch_size: int = 256) -> np.ndarray:
        return self._in_batches(self.encoder.encode_texts, texts, batch_size)

    def _in_batches(self, encode, items: list, batch_size: int) -> np.ndarray:
        """``encode(items)`` one model batch at a time. The request's deadline is checked
        before each, and the lock is let go between them so other requests get a turn."""
        parts = []
        for start in range(0, max(len(items), 1), batch_size):
            check_deadline()
            with self.lock:
                parts.append(encode(items[start : start + batch_size], batch_size=batch_size))
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def encode_texts(self, texts: Sequence[str] | str, batch_size: int = 256) -> np.ndarray:
        texts = [texts] if isinstance(texts, str) else list(texts)
        if self.batcher is None:
            return self._encode_now(texts, batch_size)
        for text in texts:  # fail here, in the caller, not inside a batch shared with others
            if not isinstance(text, str):
                raise InputError(f"texts must be strings, got {type(text).__name__}")
        return self.batcher.encode(texts) if texts else self._encode_now(texts)

    def encode_images(self, images, batch_size: int = 64, **kwargs) -> np.ndarray:
        images = list(images) if isinstance(images, (list, tuple)) else [images]
        return self._in_batches(functools.partial(self.encoder.encode_images, **kwargs), images, batch_size)

    def close(self) -> None:
        if self.batcher is not None:
            self.batcher.close()

    def __getattr__(self, name: str):
        # preprocess, dim, spec, logit_scale, logit_bias: the wrapped encoder's own.
        return getattr(self.encoder, name)
