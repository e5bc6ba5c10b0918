"""The single-writer lock of a collection.

A POSIX record lock (``fcntl.lockf``) on ``.write.lock``, not ``flock``: a record lock is
owned by the process, so processes forked while it is held (the decode workers) never hold
it, and the kernel drops it the moment its owner dies, however it dies. An ``flock`` lock
belongs to the open file, which forked children share: a killed writer's orphaned workers
kept it, and every later writer was refused.

Record locks do not exclude threads of one process from each other, and closing *any*
descriptor of the file releases them. So the process also keeps a registry of the
collections it is writing, checked before the file is even opened.
"""

from __future__ import annotations

import errno
import fcntl
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..errors import CollectionError

LOCK_NAME = ".write.lock"

_held: set[str] = set()
_held_guard = threading.Lock()
# Some holders keep the lock only a moment (creating a collection, committing a text); a
# writer that arrives then waits this long before it gives up.
WAIT_SECONDS = 3.0
_POLL_SECONDS = 0.05


class LockBusy(CollectionError):
    """The lock is held by another process (or thread) for longer than the caller would wait."""


def _busy(name: str) -> CollectionError:
    return LockBusy(f"collection {name} is being written by another process")


@contextmanager
def write_lock(directory: Path, name: str, wait: float = WAIT_SECONDS, filename: str = LOCK_NAME) -> Iterator[None]:
    """Hold ``directory``'s write lock; raise LockBusy if someone else holds it for longer
    than ``wait`` seconds. Another ``filename`` is another lock (the index builder's)."""
    key = os.path.join(os.path.realpath(directory), filename)
    deadline = time.monotonic() + wait
    while not _claim(key):
        if time.monotonic() > deadline:
            raise _busy(name)
        time.sleep(_POLL_SECONDS)
    try:
        try:
            fd = os.open(directory / filename, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as e:
            raise CollectionError(f"cannot lock collection {name} for writing: {e.strerror} ({directory})") from None
        try:
            _lock_file(fd, name, deadline)
            yield
        finally:
            os.close(fd)  # closing drops the record lock
    finally:
        with _held_guard:
            _held.discard(key)


def _claim(key: str) -> bool:
    with _held_guard:
        if key in _held:
            return False
        _held.add(key)
        return True


def _lock_file(fd: int, name: str, deadline: float) -> None:
    while True:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except OSError as e:
            if e.errno not in (errno.EACCES, errno.EAGAIN):
                raise CollectionError(f"cannot lock collection {name} for writing: {e.strerror}") from None
        if time.monotonic() > deadline:
            raise _busy(name)
        time.sleep(_POLL_SECONDS)
