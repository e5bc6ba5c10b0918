"""Query vectors: text, image, and an image plus a text instruction.

A composed query is ``(1 - w) * image + w * text``, renormalised, where ``w`` is the text
weight. It moves an image query toward the instruction ("same but at night") while keeping
what the image shows; ``w = 0`` is a pure image query and ``w = 1`` a pure text query.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from PIL import Image

from ..models.images import DEFAULT_MAX_PIXELS, decode_bytes, read_bytes
from ..errors import ImageDecodeError, InputError, NotFoundError

ImageInput = str | os.PathLike | bytes | Image.Image


def check_text(text: str) -> str:
    if not isinstance(text, str) or not text.strip():
        raise InputError("empty query: give some text to search for")
    return text.strip()


def check_image_path(image: str | os.PathLike) -> str:
    """The query image's path, refused at once when nothing is there."""
    where = os.fspath(image)
    if not Path(where).exists():
        raise NotFoundError(f"query image {where} does not exist")
    return where


def load_query_image(image: ImageInput, draft_size=None, max_pixels: int = DEFAULT_MAX_PIXELS) -> Image.Image:
    """Decode a query image given as a path, encoded bytes or a PIL image."""
    if isinstance(image, Image.Image):
        return image
    if isinstance(image, (bytes, bytearray)):
        data = bytes(image)
        where = "query image"
    else:
        where = check_image_path(image)
        try:
            data = read_bytes(where)
        except ImageDecodeError as e:
            raise InputError(f"cannot read query image {where}: {e.reason}") from None
    try:
        return decode_bytes(data, max_pixels=max_pixels, draft_size=draft_size)
    except ImageDecodeError as e:
        raise InputError(f"cannot use {where}: {e.reason}") from None


def unit_vector(values, name: str) -> np.ndarray:
    """``values`` scaled to length 1, as float32; refused when it has no direction.

    Scaled by its largest magnitude first: the squares of float32-range values overflow,
    or underflow to zero, before the norm is taken.
    """
    vector = np.asarray(values, dtype=np.float64)
    largest = float(np.abs(vector).max(initial=0.0))
    if not np.isfinite(largest):
        raise InputError(f"{name} holds a value that is not a finite number")
    if largest == 0.0:
        raise InputError(f"{name} is all zeros: it has no direction to search in")
    vector = vector / largest
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def load_query_vectors(path: str | os.PathLike) -> np.ndarray:
    """Unit query vectors from a NumPy ``.npy`` file: one vector ``(d,)`` or a batch ``(n, d)``,
    returned as they were shaped. Scaled to length 1, so that scores are cosines."""
    where = os.fspath(path)
    if not Path(where).is_file():
        raise NotFoundError(f"vector file {where} does not exist or is not a file")
    try:
        array = np.load(where, allow_pickle=False)
    except (ValueError, EOFError, OSError) as e:  # not .npy, cut short, pickled objects
        raise InputError(f"cannot read {where} as a .npy array of numbers ({str(e).splitlines()[0] or type(e).__name__})") \
            from None
    if not isinstance(array, np.ndarray) or array.dtype.kind not in "fiu":
        kind = "an archive of arrays" if not isinstance(array, np.ndarray) else f"{array.dtype} values"
        raise InputError(f"{where} holds {kind}, not real numbers")
    if array.ndim not in (1, 2) or 0 in array.shape:
        raise InputError(f"{where} holds an array of shape {array.shape}: give one vector (d,) or a batch (n, d)")
    rows = [unit_vector(row, f"{where}, vector {i}") for i, row in enumerate(np.atleast_2d(array))]
    return np.stack(rows) if array.ndim == 2 else rows[0]


def _unit(vector: np.ndarray) -> np.ndarray:
    norm = float(np.linalg.norm(vector))
    if norm < 1e-12:
        raise InputError("the image and text cancel out; change the text weight")
    return (vector / norm).astype(np.float32)


def build_query(
    encoder,
    text: str | None = None,
    image: ImageInput | None = None,
    text_weight: float = 0.5,
) -> np.ndarray:
    """One L2-normalised query vector from text, an image, or both."""
    if text is None and image is None:
        raise InputError("nothing to search for: give a text, an image, or both")
    if not 0.0 <= text_weight <= 1.0:
        raise InputError(f"text weight must be between 0 and 1, got {text_weight}")
    text_vector = encoder.encode_texts([check_text(text)])[0] if text is not None else None
    if image is None:
        return text_vector
    picture = load_query_image(image, encoder.preprocess.draft_size)
    image_vector = encoder.encode_images([picture])[0]
    if text_vector is None:
        return image_vector
    return _unit((1.0 - text_weight) * image_vector + text_weight * text_vector)
