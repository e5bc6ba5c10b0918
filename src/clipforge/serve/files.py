"""Serving the files of a collection, and nothing else.

A file is reached only through an item id of a served collection; the path comes from the
collection's own database, never from the request. That path is then trusted only while it
still is what was indexed: a regular image file whose real location (symbolic links
resolved) lies in the folder it was indexed in, or is itself a file the collection records.
A file swapped for a link that points elsewhere, or a folder swapped for one, is refused
like a missing file.
"""

from __future__ import annotations

import io
import os
import stat
import threading
from collections import OrderedDict
from pathlib import Path

from PIL import Image

from ..data.images import decode_bytes
from ..errors import ImageDecodeError, NotFoundError

THUMBNAIL_SIZE = 256
_PIL_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError, Image.DecompressionBombError)


def _unavailable(collection, item_id: int) -> NotFoundError:
    # One message for every refusal: a caller learns nothing about what lies outside.
    return NotFoundError(f"collection {collection.name} has no image file for item {item_id}")


def _servable(collection, recorded: Path) -> Path | None:
    """The real path of ``recorded`` if the collection may serve it, else None."""
    if not recorded.is_absolute() or ".." in recorded.parts:
        return None
    real = Path(os.path.realpath(recorded))
    if real == recorded or recorded.parent in real.parents:
        return real
    # A link to another indexed file (photo folders often hold links between albums).
    target = collection.store.items_by_key([str(real)]).get(str(real))
    return real if target is not None and target.kind == "image" and not target.removed else None


def read_item_file(collection, item_id: int) -> tuple[bytes, int]:
    """(bytes, mtime_ns) of the image file of a live image item."""
    try:
        item = collection.get(item_id)
    except NotFoundError:
        raise _unavailable(collection, item_id) from None
    if item.kind != "image" or item.removed or not item.path:
        raise _unavailable(collection, item_id)
    real = _servable(collection, Path(item.path))
    if real is None:
        raise _unavailable(collection, item_id)
    try:
        # O_NOFOLLOW: the last component must not have turned into a link since it was resolved.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise _unavailable(collection, item_id) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode):
            raise _unavailable(collection, item_id)
        return f.read(), info.st_mtime_ns


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
        data, mtime_ns = read_item_file(collection, item_id)
        key = (str(collection.path), item_id, mtime_ns)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                return self._entries[key]
        try:
            thumbnail = make_thumbnail(data, max_pixels)
        except ImageDecodeError:
            raise _unavailable(collection, item_id) from None
        with self._lock:
            self._entries[key] = thumbnail
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return thumbnail
