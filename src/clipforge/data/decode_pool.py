"""Decoding in a pool of worker processes, running ahead of the encoder.

Workers read each file once, hash it (for incremental indexing), read its metadata (EXIF,
sidecar: ``facts.py``), decode it in JPEG draft mode and resize/crop it to the model's input
size. They send back uint8 pixels, a quarter
of the bytes of float32; normalisation happens in the parent, batched. At most a bounded
number of tasks is in flight, so a slow encoder never makes decoded images pile up.

On Linux workers are forked, as torch's DataLoader does: they start at once and, unlike
"spawn", do not re-run the caller's script (a user's three-line script without a
``__main__`` guard must work). The workers never touch torch, so the torch threads of the
parent are no hazard to them. Elsewhere they are spawned; this module and everything it
imports stay free of torch so that spawning stays cheap.

A worker ends with the process that started it, however that one ends (SIGKILL included):
an orphaned worker would sit on its share of the parent's memory forever. Workers ignore
SIGINT; a Ctrl-C reaches the parent, which shuts the pool down.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import signal
import sys
import threading
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..errors import ImageDecodeError
from ..models.preprocess import ImagePreprocess
from ..processes import die_with_parent, exit_when_orphaned
from .facts import header_facts, image_facts
from .images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, decode_bytes, read_file

# Below this many files the pool's start-up (about a second) costs more than it saves.
MIN_FILES_FOR_POOL = 16
_CHUNK = 4  # files per task: amortises inter-process overhead, keeps latency low


@dataclass
class Decoded:
    path: str
    sha256: str | None = None
    pixels: np.ndarray | None = None  # uint8 HWC at the model's input size
    width: int = 0  # of the original image, after EXIF rotation
    height: int = 0
    error: str | None = None
    size: int | None = None  # of the file as it was read, which may differ from an earlier listing
    mtime_ns: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the item's keys (``facts.py``)
    meta_signature: str | None = None  # what besides the file's bytes the metadata was read from


def decode_file(path: str, preprocess: ImagePreprocess, max_pixels: int = DEFAULT_MAX_PIXELS,
                max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Decoded:
    """Read, hash, decode and resize one file. Never raises for a bad file."""
    if not isinstance(path, str):  # a URL or a shard member (``sources.py``)
        return decode_source(path, preprocess, max_pixels, max_bytes)
    try:
        data, info = read_file(path, max_bytes)
    except ImageDecodeError as e:
        return Decoded(path, error=e.reason)
    read = {"sha256": hashlib.sha256(data).hexdigest(), "size": info.st_size, "mtime_ns": info.st_mtime_ns}
    try:
        image = decode_bytes(data, max_pixels=max_pixels, draft_size=preprocess.draft_size)
        facts = image_facts(path, data, info, image.size)
        return Decoded(path, pixels=preprocess.resize_crop(image), width=facts.width, height=facts.height,
                       metadata=facts.metadata, meta_signature=facts.signature, **read)
    except ImageDecodeError as e:
        return Decoded(path, error=e.reason, **read)
    except MemoryError:
        return Decoded(path, error="out of memory while decoding", **read)


def decode_source(source, preprocess: ImagePreprocess, max_pixels: int = DEFAULT_MAX_PIXELS,
                  max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Decoded:
    """Fetch, hash, decode and resize one image that is not a local file: anything with a
    ``name`` and a ``read(max_bytes) -> (bytes, size, mtime_ns)``. Never raises for a bad one.
    Its item's metadata comes from where it was listed (a table row, a shard's sample)."""
    try:
        data, size, mtime_ns = source.read(max_bytes)
    except ImageDecodeError as e:
        return Decoded(source.name, error=e.reason)
    read = {"sha256": hashlib.sha256(data).hexdigest(), "size": size, "mtime_ns": mtime_ns}
    try:
        image = decode_bytes(data, max_pixels=max_pixels, draft_size=preprocess.draft_size)
        width, height, camera = header_facts(data, image.size)
        return Decoded(source.name, pixels=preprocess.resize_crop(image), width=width, height=height,
                       metadata={"width": width, "height": height, "bytes": len(data), **camera}, **read)
    except ImageDecodeError as e:
        return Decoded(source.name, error=e.reason, **read)
    except MemoryError:
        return Decoded(source.name, error="out of memory while decoding", **read)


def _decode_chunk(paths: list[str], preprocess: ImagePreprocess, max_pixels: int, max_bytes: int) -> list[Decoded]:
    return [decode_file(p, preprocess, max_pixels, max_bytes) for p in paths]


def _start_worker(parent: int, parent_is_main_thread: bool) -> None:
    """Runs first in every worker: tie its life to the parent's."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if parent_is_main_thread:  # the kernel's request follows the forking thread, not the process
        die_with_parent()
    exit_when_orphaned(parent)


def default_workers() -> int:
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def decode_many(
    paths: Iterable[str],
    preprocess: ImagePreprocess,
    *,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[Decoded]:
    """Decode ``paths`` in order. ``workers=0`` decodes in this process."""
    paths = list(paths)
    workers = default_workers() if workers is None else workers
    if workers <= 0 or len(paths) < MIN_FILES_FOR_POOL:
        for path in paths:
            yield decode_file(path, preprocess, max_pixels, max_bytes)
        return
    chunks = [paths[i : i + _CHUNK] for i in range(0, len(paths), _CHUNK)]
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    start = (os.getpid(), threading.current_thread() is threading.main_thread())
    with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_start_worker, initargs=start) as pool:
        pending: deque[Future] = deque()
        next_chunk = 0
        try:
            while pending or next_chunk < len(chunks):
                while next_chunk < len(chunks) and len(pending) < 4 * workers:
                    pending.append(pool.submit(_decode_chunk, chunks[next_chunk], preprocess, max_pixels, max_bytes))
                    next_chunk += 1
                yield from pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
