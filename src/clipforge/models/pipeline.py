"""The one image pipeline: decode -> resize/crop -> normalise -> encode, in batches.

Every image that reaches a model comes through here: indexing, evaluation, validation during
training, the server's uploads, ONNX calibration. Two stages:

1. ``decode_images``: read and decode each image (JPEG draft mode: decoded near the model's
   input size, straight from the DCT), resize and crop it to that size, in a pool of worker
   processes running ahead of the model (``workers``). Results come back in order as
   ``Decoded``: uint8 pixels, a quarter of the bytes of float32 to send between processes,
   or the reason the image could not be decoded. A caller that needs more from each file
   (indexing: its hash and metadata, read from the same bytes) passes its own ``read``.
2. ``Encoder.encode_decoded``: normalise a batch of those pixels and run the model.

``encode_images`` joins the two with one progress bar, in the manner of
sentence-transformers' ``encode``; it is what ``Encoder.encode_images`` runs.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import closing
from dataclasses import dataclass
from typing import Any

import numpy as np
from PIL import Image

from ..errors import ImageDecodeError
from ..progress import progress_bar
from .images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, decode_bytes, read_file
from .preprocess import ImagePreprocess
from .workers import map_in_order


@dataclass
class Decoded:
    name: str
    pixels: np.ndarray | None = None  # uint8 HWC at the model's input size
    error: str | None = None  # why there are no pixels


def image_name(item: Any) -> str:
    if isinstance(item, Image.Image):
        return "<image>"
    if isinstance(item, (str, os.PathLike)):
        return os.fspath(item)
    return str(getattr(item, "name", item))


def encoded_bytes(item: Any, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """The encoded image an item holds: a file path, or anything with ``read()`` returning
    bytes (``data.pairs.ImageLocation``: a tar member, a URL). Raises ImageDecodeError."""
    if isinstance(item, (str, os.PathLike)):
        return read_file(item, max_bytes)[0]
    return item.read()


def read_image(item: Any, preprocess: ImagePreprocess, max_pixels: int = DEFAULT_MAX_PIXELS,
               max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> Decoded:
    """Decode and resize one image (a PIL image, a path, or a readable item). Never raises
    for a bad image: the reason is in ``error``."""
    name = image_name(item)
    try:
        if isinstance(item, Image.Image):
            return Decoded(name, pixels=preprocess.resize_crop(item))
        image = decode_bytes(encoded_bytes(item, max_bytes), max_pixels=max_pixels, draft_size=preprocess.draft_size)
        return Decoded(name, pixels=preprocess.resize_crop(image))
    except ImageDecodeError as e:
        return Decoded(name, error=e.reason)
    except MemoryError:
        return Decoded(name, error="out of memory while decoding")


Reader = Callable[..., Decoded]  # (item, preprocess, max_pixels, max_bytes) -> a Decoded


def decode_images(
    items: Iterable[Any],
    preprocess: ImagePreprocess,
    *,
    read: Reader = read_image,
    workers: int | None = None,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_bytes: int = DEFAULT_MAX_FILE_BYTES,
) -> Iterator[Decoded]:
    """``read(item)`` for every item, in order, in ``workers`` processes (None: one per core;
    0: in this process). Images already in memory are never sent to a worker."""
    items = list(items)
    if any(isinstance(item, Image.Image) for item in items):
        workers = 0  # pickling a decoded image to a worker costs more than resizing it here
    func = functools.partial(read, preprocess=preprocess, max_pixels=max_pixels, max_bytes=max_bytes)
    return map_in_order(func, items, workers)


def checked(decoded: Iterable[Decoded]) -> Iterator[Decoded]:
    """The decoded images, raising ImageDecodeError naming the first one that failed."""
    for item in decoded:
        if item.error:
            raise ImageDecodeError(item.error, item.name)
        yield item


def batches(decoded: Iterable[Decoded], size: int) -> Iterator[list[Decoded]]:
    batch: list[Decoded] = []
    for item in decoded:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def encode_images(
    encoder,
    images: Sequence[Any] | Any,
    *,
    batch_size: int = 64,
    workers: int | None = None,
    progress: bool | None = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> np.ndarray:
    """L2-normalised vectors of ``images`` (PIL images, paths or readable items), in order.

    An image that cannot be decoded raises ImageDecodeError naming it: a result over fewer
    images than asked is a different result. (A Collection indexes many files and records the
    bad ones instead.) ``progress``: None = a bar when stderr is a terminal.
    """
    if isinstance(images, (str, os.PathLike, Image.Image)):
        images = [images]  # one image, not the characters of its path
    images = list(images)
    out = [np.zeros((0, encoder.dim), np.float32)]
    done = 0
    decoded = decode_images(images, encoder.preprocess, workers=workers, max_pixels=max_pixels)
    with progress_bar("encoding images", enabled=progress, transient=True) as update, closing(decoded):
        for batch in batches(checked(decoded), max(1, batch_size)):
            out.append(encoder.encode_decoded([item.pixels for item in batch], batch_size=batch_size))
            done += len(batch)
            update(done, len(images))
    return np.concatenate(out)
