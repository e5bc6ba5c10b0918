"""A pool of worker processes that runs ahead of the encoder, handing results back in order.

The image pipeline decodes in it (``pipeline.decode_images``). At most a bounded number of
tasks is in flight, so a slow encoder never makes decoded images pile up.

On Linux workers are forked, as torch's DataLoader does: they start at once and, unlike
"spawn", do not re-run the caller's script (a user's three-line script without a
``__main__`` guard must work). The workers never touch torch, so the torch threads of the
parent are no hazard to them. Elsewhere they are spawned; this module and what the workers
run stay free of torch so that spawning stays cheap.

A worker ends with the process that started it, however that one ends (SIGKILL included):
an orphaned worker would sit on its share of the parent's memory forever. Workers ignore
SIGINT; a Ctrl-C reaches the parent, which shuts the pool down.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from typing import Any

from ..processes import die_with_parent, exit_when_orphaned, usable_cores

# Below this many items the pool's start-up (about a second) costs more than it saves.
MIN_ITEMS_FOR_POOL = 16
_CHUNK = 4  # items per task: amortises inter-process overhead, keeps latency low
_CHUNKS_IN_FLIGHT_PER_WORKER = 4


def _run_chunk(func: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    return [func(item) for item in items]


def _start_worker(parent: int, parent_is_main_thread: bool) -> None:
    """Runs first in every worker: tie its life to the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_is_main_thread:  # the kernel's request follows the forking thread, not the process
        die_with_parent()
    exit_when_orphaned(parent)


def map_in_order(func: Callable[[Any], Any], items: Iterable[Any], workers: int | None = None) -> Iterator[Any]:
    """``func(item)`` for every item, in order, computed by ``workers`` processes (None: one
    per usable core; 0: in this process). ``func`` must be picklable (a module-level function
    or a ``functools.partial`` of one) and must not raise for a bad item."""
    items = list(items)
    workers = usable_cores() if workers is None else workers
    if workers <= 0 or len(items) < MIN_ITEMS_FOR_POOL:
        yield from map(func, items)
        return
    chunks = [items[i : i + _CHUNK] for i in range(0, len(items), _CHUNK)]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    start = (os.getpid(), threading.current_thread() is threading.main_thread())
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker, initargs=start) as pool:
        pending: deque[Future] = deque()
        next_chunk = 0
        try:
            while pending or next_chunk < len(chunks):
                while next_chunk < len(chunks) and len(pending) < _CHUNKS_IN_FLIGHT_PER_WORKER * workers:
                    pending.append(pool.submit(_run_chunk, func, chunks[next_chunk]))
                    next_chunk += 1
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
