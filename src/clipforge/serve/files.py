"""Serving the files of a collection: an item's file as it is, or as a thumbnail.

Which files may be served at all is the collection's decision (``Collection.item_file``):
only an item's own file, while it still is what was indexed.
"""

from __future__ import annotations

import io
import threading
from collections import OrderedDict

from PIL import Image

from ..models.images import decode_bytes
from ..errors import ImageDecodeError
from ..index.item_files import unavailable

THUMBNAIL_SIZE = 256
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError, Image.DecompressionBombError)


def image_mime(data: bytes) -> str | None:
    """The MIME type of an encoded image, read from its header; None if it is not one."""
    # Pillow's bomb warning is silenced where data.images is imported, as here; catch_warnings
    # would not do in a server: it swaps process-wide state under other threads.
    try:
        with Image.open(io.BytesIO(data)) as image:
            return Image.MIME.get(image.format or "")
    except _PIL_ERRORS:
        return None


def make_thumbnail(data: bytes, max_pixels: int, size: int = THUMBNAIL_SIZE) -> bytes:
    """A JPEG no larger than ``size`` on its longer side."""
    image = decode_bytes(data, max_pixels=max_pixels, draft_size=(size, size))
    image.thumbnail((size, size), Image.Resampling.BICUBIC)
    out = io.BytesIO()
    image.save(out, format="JPEG", quality=85, optimize=True)
    return out.getvalue()


class ThumbnailCache:
    """Recently made thumbnails, keyed by the file's mtime so an edited file is redone."""

    def __init__(self, max_entries: int = 1024):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, collection, item_id: int, max_pixels: int) -> bytes:
        data, mtime_ns = collection.item_file(item_id)
        key = (str(collection.path), item_id, mtime_ns)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        try:
            thumbnail = make_thumbnail(data, max_pixels)
        except ImageDecodeError:
            raise unavailable(collection, item_id) from None
        with self._lock:
            self._entries[key] = thumbnail
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return thumbnail
