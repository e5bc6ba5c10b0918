"""The deadline of a request, carried into the threads that do its work.

``DeadlineMiddleware`` answers 408 when a request runs out of time, but the work of that
request runs in worker threads that an asyncio timeout cannot stop: a cancelled
``run_in_executor`` only drops work that has not started. So the middleware opens a
``Deadline`` in the request's context, ``Service.run`` copies that context into the worker
(``run_in_executor`` does not), and long work calls ``check_deadline()`` between its steps
(model calls, images, search steps); past the deadline it raises and ends.
"""

from __future__ import annotations

import contextvars
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

from fastapi import HTTPException

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar("clipforge_deadline", default=None)


class DeadlineExceeded(HTTPException):
    def __init__(self, seconds: float):
        super().__init__(408, f"request took longer than the {seconds:g} s limit")


class Deadline:
    """A point in time, or an earlier end: the request was answered, or its client left."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.at = time.monotonic() + seconds
        self._ended = threading.Event()

    def end(self) -> None:
        self._ended.set()

    def remaining(self) -> float:
        return 0.0 if self._ended.is_set() else max(0.0, self.at - time.monotonic())

    def check(self) -> None:
        if self.remaining() <= 0.0:
            raise DeadlineExceeded(self.seconds)


@contextmanager
def request_deadline(seconds: float) -> Iterator[Deadline]:
    """The deadline of the request run inside; when the block exits, its work must stop."""
    deadline = Deadline(seconds)
    token = _current.set(deadline)
    try:
        yield deadline
    finally:
        deadline.end()
        _current.reset(token)


def current_deadline() -> Deadline | None:
    return _current.get()


def check_deadline() -> None:
    """Raise ``DeadlineExceeded`` if the request this thread works for is out of time."""
    deadline = _current.get()
    if deadline is not None:
        deadline.check()
