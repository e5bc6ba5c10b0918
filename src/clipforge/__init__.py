"""clipforge: train, use, measure and serve CLIP-style image-text dual encoders.

The public API is re-exported here lazily, so that light modules (image decoding in worker
processes) can be imported without pulling in torch.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .errors import (
    ClipforgeError,
    CollectionError,
    ImageDecodeError,
    InputError,
    ModelLoadError,
    ModelMismatchError,
    NotFoundError,
)

__version__ = "0.1.0"

__all__ = [
    "ClipforgeError",
    "Collection",
    "CollectionError",
    "Encoder",
    "ImageDecodeError",
    "InputError",
    "ModelLoadError",
    "ModelMismatchError",
    "NotFoundError",
    "classify",
    "load_encoder",
]

_LAZY = {
    "load_encoder": ("clipforge.models", "load_encoder"),
    "Encoder": ("clipforge.models", "Encoder"),
    "Collection": ("clipforge.index.collection", "Collection"),
    "classify": ("clipforge.search.classify", "classify"),
}

if TYPE_CHECKING:
    from .index.collection import Collection
    from .models import Encoder, load_encoder
    from .search.classify import classify


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'clipforge' has no attribute {name!r}")
