"""What every encoder backend shares, without torch: input checks and ``encode_images``.

A backend (torch in ``hf.py``, ONNX Runtime in ``onnx_encoder.py``) provides
``encode_texts`` and ``encode_pixels``; both return L2-normalised float32 arrays.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

import numpy as np
from PIL import Image

from ..data.images import DEFAULT_MAX_PIXELS, decode_image
from ..errors import InputError


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
    """``encode_images`` for a backend that has ``preprocess``, ``dim`` and ``encode_pixels``."""

    def encode_images(
        self,
        images: Sequence[Image.Image | str | os.PathLike] | Image.Image | str | os.PathLike,
        batch_size: int = 64,
        max_pixels: int = DEFAULT_MAX_PIXELS,
    ) -> np.ndarray:
        """Encode PIL images or image files. A file that cannot be decoded raises
        ImageDecodeError; use a Collection to index many files with bad ones skipped."""
        if isinstance(images, (str, os.PathLike, Image.Image)):
            images = [images]  # one image, not the characters of its path
        arrays = []
        for image in images:
            if not isinstance(image, Image.Image):
                image = decode_image(image, max_pixels=max_pixels, draft_size=self.preprocess.draft_size)
            arrays.append(self.preprocess.resize_crop(image))
        if not arrays:
            return np.zeros((0, self.dim), np.float32)
        return self.encode_pixels(self.preprocess.normalize(np.stack(arrays)), batch_size=batch_size)
