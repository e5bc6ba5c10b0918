"""An item's own file, and nothing else.

A file is reached only through an item id; the path comes from the collection's own
database, never from a caller. That path is then trusted only while it still is what was
indexed: a regular image file whose real location (symbolic links resolved) lies in the
folder it was indexed in, or is itself a file the collection records. A file swapped for a
link that points elsewhere, or a folder swapped for one, is refused like a missing file.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from ..models.images import DEFAULT_MAX_FILE_BYTES
from ..errors import NotFoundError


def unavailable(collection, item_id: int) -> NotFoundError:
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
        raise unavailable(collection, item_id) from None
    if item.kind != "image" or item.removed or not item.path:
        raise unavailable(collection, item_id)
    real = _servable(collection, Path(item.path))
    if real is None:
        raise unavailable(collection, item_id)
    try:
        # O_NOFOLLOW: the last component must not have turned into a link since it was resolved.
        fd = os.open(real, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        raise unavailable(collection, item_id) from None
    with os.fdopen(fd, "rb") as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_size > DEFAULT_MAX_FILE_BYTES:
            raise unavailable(collection, item_id)
        return f.read(DEFAULT_MAX_FILE_BYTES), info.st_mtime_ns
