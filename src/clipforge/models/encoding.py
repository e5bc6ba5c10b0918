"""What every encoder backend shares, without torch: input checks and the image side of the API.

A backend (torch in ``hf.py``, ONNX Runtime in ``onnx_encoder.py``) provides
``encode_texts`` and ``encode_pixels``; both return L2-normalised float32 arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..errors import InputError
from .images import DEFAULT_MAX_PIXELS


def text_list(texts: Sequence[str] | str) -> list[str]:
    """The texts as a list; a lone string is one text, not a sequence of one-character texts."""
    texts = [texts] if isinstance(texts, str) else list(texts)
    for text in texts:
        if not isinstance(text, str):
            raise InputError(f"texts must be strings, got {type(text).__name__}")
    return texts


def unit_rows(features: np.ndarray) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    return features / np.maximum(np.linalg.norm(features, axis=-1, keepdims=True), 1e-12)


class ImageEncoding:
    """The image side of the encoder API, for a backend that has ``preprocess``, ``dim`` and
    ``encode_pixels``."""

    def encode_images(
        self,
        images: Sequence[Image.Image | str | os.PathLike] | Image.Image | str | os.PathLike,
        batch_size: int = 64,
        *,
        workers: int | None = None,
        progress: bool | None = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> np.ndarray:
        """Encode PIL images or image files, decoding files in ``workers`` processes (None: one
        per core). A file that cannot be decoded raises ImageDecodeError; use a Collection to
        index many files with bad ones skipped. ``progress``: None = a bar on a terminal."""
        from .pipeline import encode_images

        return encode_images(self, images, batch_size=batch_size, workers=workers, progress=progress,
                             max_pixels=max_pixels)

    def warm_up(self) -> None:
        """Get ready to encode images soon (a backend that loads its image model lazily starts
        loading it); returns at once."""

    def encode_decoded(self, pixels: Sequence[np.ndarray] | np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Encode uint8 HWC arrays at the model's input size, as ``pipeline.decode_images``
        makes them. They are normalised a batch at a time: float32 is four times their size."""
        if len(pixels) == 0:
            return np.zeros((0, self.dim), np.float32)
        out = []
        for start in range(0, len(pixels), batch_size):
            chunk = np.stack(pixels[start : start + batch_size])
            out.append(self.encode_pixels(self.preprocess.normalize(chunk), batch_size=batch_size))
        return np.concatenate(out)
