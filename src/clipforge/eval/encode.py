"""Encoding every image and caption of an evaluation, with a progress bar.

Unlike indexing, evaluation must not skip anything: an image that fails to decode is an
error naming it, since a benchmark over fewer items is a different benchmark.

Images are decoded in a small thread pool, one batch ahead of the model: PIL releases the
GIL while it decodes and resizes, so threads overlap decoding with inference without the
start-up cost of processes, and they read tar members as easily as files.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ..data.images import DEFAULT_MAX_PIXELS, decode_bytes
from ..errors import ImageDecodeError
from .dataset import ImageRef


@dataclass
class EncodeConfig:
    image_batch_size: int = 64
    text_batch_size: int = 256
    workers: int | None = None  # decode threads; None: one per core
    progress: bool | None = None  # None: only when stderr is a terminal
    max_pixels: int = DEFAULT_MAX_PIXELS


@contextmanager
def progress_bar(description: str, total: int, enabled: bool | None) -> Iterator:
    console = Console(stderr=True)
    show = console.is_terminal if enabled is None else enabled
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=True, disable=not show) as progress:
        task = progress.add_task(description, total=total)
        yield lambda n: progress.advance(task, n)


def _pixels(ref: ImageRef, preprocess, max_pixels: int) -> np.ndarray:
    data = ref.read()
    try:
        image = decode_bytes(data, max_pixels=max_pixels, draft_size=preprocess.draft_size)
    except ImageDecodeError as e:
        raise ImageDecodeError(e.reason, ref.name) from None
    return preprocess.resize_crop(image)


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def _pixel_batches(images: Sequence[ImageRef], preprocess, config: EncodeConfig) -> Iterator[np.ndarray]:
    """uint8 NHWC batches in order, decoded by a pool that keeps one batch ahead."""
    size = max(1, config.image_batch_size)
    batches = [images[i : i + size] for i in range(0, len(images), size)]
    with ThreadPoolExecutor(max_workers=config.workers or _cores()) as pool:

        def submit(batch: Sequence[ImageRef]) -> list[Future]:
            return [pool.submit(_pixels, ref, preprocess, config.max_pixels) for ref in batch]

        pending: deque[list[Future]] = deque(submit(b) for b in batches[:2])
        try:
            for next_batch in range(2, len(batches) + 2):
                futures = pending.popleft()
                pixels = np.stack([f.result() for f in futures])
                if next_batch < len(batches):
                    pending.append(submit(batches[next_batch]))
                yield pixels
        finally:  # an undecodable image stops the run: drop the work queued behind it
            for future in (f for batch in pending for f in batch):
                future.cancel()


def encode_images(encoder, images: Sequence[ImageRef], config: EncodeConfig | None = None) -> np.ndarray:
    """L2-normalised embeddings of ``images``, in order."""
    config = config or EncodeConfig()
    out = [np.zeros((0, encoder.dim), np.float32)]
    with progress_bar("encoding images", len(images), config.progress) as advance:
        for pixels in _pixel_batches(images, encoder.preprocess, config):
            out.append(encoder.encode_pixels(encoder.preprocess.normalize(pixels), batch_size=len(pixels)))
            advance(len(pixels))
    return np.concatenate(out)


def encode_texts(encoder, texts: Sequence[str], config: EncodeConfig | None = None) -> np.ndarray:
    config = config or EncodeConfig()
    size = max(1, config.text_batch_size)
    out = [np.zeros((0, encoder.dim), np.float32)]
    with progress_bar("encoding texts", len(texts), config.progress) as advance:
        for start in range(0, len(texts), size):
            chunk = list(texts[start : start + size])
            out.append(encoder.encode_texts(chunk, batch_size=size))
            advance(len(chunk))
    return np.concatenate(out)
