"""Encoding every image and caption of an evaluation, with a progress bar.

Images go through the one image pipeline (``models.pipeline``): decoded in worker processes
ahead of the model, tar members and URLs as easily as files. Unlike indexing, evaluation must
not skip anything: an image that fails to decode is an error naming it, since a benchmark
over fewer items is a different benchmark.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..models.images import DEFAULT_MAX_PIXELS
from ..progress import progress_bar
from .dataset import ImageRef


@dataclass
class EncodeConfig:
    image_batch_size: int = 64
    text_batch_size: int = 256
    workers: int | None = None  # decode processes; None: one per core
    progress: bool | None = None  # None: only when stderr is a terminal
    max_pixels: int = DEFAULT_MAX_PIXELS


def encode_images(encoder, images: Sequence[ImageRef], config: EncodeConfig | None = None) -> np.ndarray:
    """L2-normalised embeddings of ``images``, in order."""
    config = config or EncodeConfig()
    return encoder.encode_images(images, batch_size=max(1, config.image_batch_size), workers=config.workers,
                                 progress=config.progress, max_pixels=config.max_pixels)


def encode_texts(encoder, texts: Sequence[str], config: EncodeConfig | None = None) -> np.ndarray:
    config = config or EncodeConfig()
    size = max(1, config.text_batch_size)
    out = [np.zeros((0, encoder.dim), np.float32)]
    with progress_bar("encoding texts", unit="texts", enabled=config.progress, transient=True) as update:
        for start in range(0, len(texts), size):
            chunk = list(texts[start : start + size])
            out.append(encoder.encode_texts(chunk, batch_size=size))
            update(start + len(chunk), len(texts))
    return np.concatenate(out)
