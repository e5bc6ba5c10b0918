"""The metadata of an image file's item: what the file is, what its camera recorded, and
what its sidecar says. These keys are a contract: filters, scripts and saved searches use them.

    width, height   the upright image's size in pixels (EXIF rotation applied)
    bytes           the file's size
    modified        the file's modification time, ISO UTC: 2024-05-01T10:20:30Z
    folder, name    the file's folder (absolute, links resolved) and its name; bytes that are
                    not UTF-8 are shown as \\xNN
    taken, make, model, camera, lens, lat, lon, orientation
                    what the camera recorded (``exif.py``); absent where it recorded nothing
    anything else   the keys of the file's JSON sidecar (``sidecar.py``)

A sidecar may correct what the camera recorded (a wrong clock, a missing position), so on a
clash its value wins over EXIF's; it cannot change what the file is, so the file's own keys
win over both.

Everything is read from the bytes already read for decoding, in the decode worker; only the
small sidecar is a second file. This module must not import torch.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from PIL import Image

from ..paths import readable_path
from .exif import exif_facts
from .sidecar import read_sidecar, sidecar_path
from .sidecar import signature as sidecar_signature

# Raise it when the keys read change: a re-index then reads every image's metadata again
# (reusing its vector), so that collections indexed before get the new keys.
FACTS_VERSION = 1
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}


@dataclass
class ImageFacts:
    width: int
    height: int
    metadata: dict[str, Any] = field(default_factory=dict)
    signature: str = ""  # what besides the file's bytes the metadata was read from


def image_facts(path: str, data: bytes, info: os.stat_result, decoded_size: tuple[int, int]) -> ImageFacts:
    """The facts of the image file at ``path``, whose bytes ``data`` decoded to ``decoded_size``
    (draft mode may have shrunk it: the true size comes from the header)."""
    width, height, camera = header_facts(data, decoded_size)
    sidecar, read_as = read_sidecar(path)
    folder, name = os.path.split(path)
    own = {"width": width, "height": height, "bytes": info.st_size,
           "folder": readable_path(folder), "name": readable_path(name)}
    modified = iso_utc(info.st_mtime_ns)
    if modified:
        own["modified"] = modified
    return ImageFacts(width, height, {**camera, **sidecar, **own}, _signature(read_as))


def current_signature(path: str, names_in_folder: set[str] | None = None) -> str:
    """The signature ``image_facts`` would record for ``path`` now, from its sidecar's status."""
    return _signature(sidecar_signature(sidecar_path(path, names_in_folder)))


def _signature(sidecar: str) -> str:
    return f"facts {FACTS_VERSION}; sidecar {sidecar}" if sidecar else f"facts {FACTS_VERSION}"


def iso_utc(mtime_ns: int) -> str | None:
    try:
        moment = datetime.fromtimestamp(mtime_ns // 1_000_000_000, tz=timezone.utc)
    except (OverflowError, OSError, ValueError):  # a time stamp past the year 9999
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def header_facts(data: bytes, decoded_size: tuple[int, int]) -> tuple[int, int, dict[str, Any]]:
    """(upright width, upright height, EXIF facts) from the image's header."""
    try:
        with Image.open(io.BytesIO(data)) as header:
            width, height = header.size
            camera = exif_facts(header)
    except Exception:  # the decode succeeded; a header quirk must not fail it now
        return (*decoded_size, {})
    if camera.get("orientation") in _ROTATED_ORIENTATIONS:
        width, height = height, width
    return width, height, camera
