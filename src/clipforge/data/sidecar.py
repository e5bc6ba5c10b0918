"""User metadata from a JSON sidecar beside an image file.

The sidecar of ``photo.jpg`` is ``photo.jpg.json`` in the same folder, as Google Takeout
writes it; Takeout's newer ``photo.jpg.supplemental-metadata.json`` is read too (the first
found wins). A sidecar holds one JSON object. Its keys become metadata keys; the keys of
a nested object are joined with dots (``geoData.latitude``); lists are kept but no filter
compares them.

A sidecar that cannot be used (not JSON, not an object, too large, unreadable) costs the
image nothing: its item records ``sidecar_error`` with the reason instead of the sidecar's
keys, which ``sidecar_error exists`` finds, and fixing the sidecar is noticed by the next run.
"""

from __future__ import annotations

import json
import os
from typing import Any

from ..errors import ImageDecodeError
from ..paths import readable_path
from ..models.images import read_file

SUFFIXES = (".json", ".supplemental-metadata.json")
MAX_BYTES = 1 << 20  # a sidecar is a few hundred bytes; this bounds a hostile one
MAX_KEYS = 256  # each key is a row of the collection's database


def sidecar_path(image_path: str, names_in_folder: set[str] | None = None) -> str | None:
    """The sidecar of ``image_path``, if there is one; ``names_in_folder`` spares the lookups
    when the folder was listed anyway."""
    folder, name = os.path.split(image_path)
    for suffix in SUFFIXES:
        candidate = name + suffix
        # Whatever bears the name is the sidecar, even a pipe or a dangling link: reading it
        # then records why it could not be used, the same way every run.
        path = os.path.join(folder, candidate)
        if candidate in names_in_folder if names_in_folder is not None else os.path.lexists(path):
            return path
    return None


def signature(path: str | None) -> str:
    """What identifies the sidecar as it is now: which name it has, its size and mtime ("" when none)."""
    if path is None:
        return ""
    try:
        return _stamp(path, os.stat(path))
    except OSError:
        return ""


def _stamp(path: str, info: os.stat_result) -> str:
    # The suffix, not the name: a name that is not UTF-8 cannot be stored as text.
    suffix = next(s for s in reversed(SUFFIXES) if path.endswith(s))
    return f"{suffix}:{info.st_size}:{info.st_mtime_ns}"


def read_sidecar(image_path: str) -> tuple[dict[str, Any], str]:
    """(metadata from the sidecar of ``image_path``, its signature as read)."""
    path = sidecar_path(image_path)
    if path is None:
        return {}, ""
    name = readable_path(os.path.basename(path))
    try:
        raw, info = read_file(path, MAX_BYTES)  # a regular file, bounded, never a blocking pipe
    except ImageDecodeError as e:
        return _error(f"cannot read {name}: {e.reason}"), signature(path)
    try:
        data = json.loads(raw, parse_constant=_not_json)
        json.dumps(data, ensure_ascii=False).encode("utf-8")  # a lone surrogate escape is no text
        flat = _flattened(data) if isinstance(data, dict) else None
    except (ValueError, UnicodeError, RecursionError) as e:
        return _error(f"{name} is not valid JSON ({_first_line(e)})"), _stamp(path, info)
    if flat is None:
        return _error(f"{name} holds a JSON {type(data).__name__}, not an object"), _stamp(path, info)
    if len(flat) > MAX_KEYS:
        return _error(f"{name} has {len(flat)} keys, more than {MAX_KEYS}"), _stamp(path, info)
    return flat, _stamp(path, info)


def _flattened(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat: dict[str, Any] = {}
    for key, value in data.items():
        if isinstance(value, dict):
            flat.update(_flattened(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _not_json(constant: str):
    raise ValueError(f"{constant} is not a JSON value")


def _first_line(error: Exception) -> str:
    return str(error).splitlines()[0] if str(error) else type(error).__name__


def _error(reason: str) -> dict[str, str]:
    return {"sidecar_error": reason}
