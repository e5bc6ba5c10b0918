"""How indexing reads an image: once, for its hash, its metadata and its pixels.

The image pipeline (``models.pipeline``) runs this in its decode workers. Each file is read
into memory once; the same bytes are hashed (for incremental indexing: a known hash reuses
its vector), searched for metadata (EXIF, a JSON sidecar: ``data/facts.py``) and decoded.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

from ..data.facts import header_facts, image_facts
from ..errors import ImageDecodeError
from ..models.images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, decode_bytes, read_file
from ..models.pipeline import Decoded
from ..models.preprocess import ImagePreprocess


@dataclass
class ReadImage(Decoded):
    sha256: str | None = None
    width: int = 0  # of the original image, after EXIF rotation
    height: int = 0
    size: int | None = None  # of the file as it was read, which may differ from an earlier listing
    mtime_ns: int | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # the item's keys (``facts.py``)
    meta_signature: str | None = None  # what besides the file's bytes the metadata was read from


def read_for_index(item, preprocess: ImagePreprocess, max_pixels: int = DEFAULT_MAX_PIXELS,
                   max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> ReadImage:
    """Read, hash, decode and resize one file (a path) or listed source: anything else with a
    ``name`` and a ``read(max_bytes) -> (bytes, size, mtime_ns)``, such as a URL or a shard
    member (``data/sources.py``), whose item's metadata comes from where it was listed.
    Never raises for a bad image: the reason is in ``error``."""
    name = item if isinstance(item, str) else item.name
    try:
        if isinstance(item, str):
            data, info = read_file(item, max_bytes)
            size, mtime_ns = info.st_size, info.st_mtime_ns
        else:
            data, size, mtime_ns = item.read(max_bytes)
    except ImageDecodeError as e:
        return ReadImage(name, error=e.reason)
    read = ReadImage(name, sha256=hashlib.sha256(data).hexdigest(), size=size, mtime_ns=mtime_ns)
    try:
        image = decode_bytes(data, max_pixels=max_pixels, draft_size=preprocess.draft_size)
        if isinstance(item, str):
            facts = image_facts(item, data, info, image.size)
            read.width, read.height = facts.width, facts.height
            read.metadata, read.meta_signature = facts.metadata, facts.signature
        else:
            read.width, read.height, camera = header_facts(data, image.size)
            read.metadata = {"width": read.width, "height": read.height, "bytes": len(data), **camera}
        read.pixels = preprocess.resize_crop(image)
    except ImageDecodeError as e:
        read.error = e.reason
    except MemoryError:
        read.error = "out of memory while decoding"
    return read
