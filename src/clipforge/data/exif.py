"""What a camera recorded in an image's EXIF block, as the metadata keys filters use.

    taken         capture time, ISO text (2023-06-15T14:30:05): DateTimeOriginal, else
                  DateTimeDigitized, else DateTime. The camera's own clock, without a zone,
                  as the camera wrote it (``values.py`` reads times without a zone as UTC, and
                  a filter typed by a person means that same clock).
    make, model   as written, trimmed
    camera        make and model without the make repeated ("Google Pixel 7", "Canon EOS R5")
    lens          LensModel
    lat, lon      GPS position in signed decimal degrees (south and west negative)
    orientation   the EXIF orientation, 1 to 8

A key is absent when its tag is: a missing, truncated or garbled block gives fewer keys or
none, never an error. Pillow only; this module must not import torch (decode workers use it).
"""

from __future__ import annotations

import math
import re
from datetime import datetime
from typing import Any

from PIL import Image

# Importing images installs the filter that keeps Pillow's warnings about corrupt EXIF
# blocks off the user's terminal.
from ..models import images  # noqa: F401

_MAKE, _MODEL, _ORIENTATION, _DATE_TIME = 0x010F, 0x0110, 0x0112, 0x0132
_EXIF_IFD, _GPS_IFD = 0x8769, 0x8825
_DATE_TIME_ORIGINAL, _DATE_TIME_DIGITIZED, _LENS_MODEL = 0x9003, 0x9004, 0xA434
_LAT_REF, _LAT, _LON_REF, _LON = 1, 2, 3, 4

# EXIF writes "2023:06:15 14:30:05"; some writers use dashes or a T.
_EXIF_TIME = re.compile(r"^(\d{4})[:-](\d{2})[:-](\d{2})[ T](\d{2}):(\d{2}):(\d{2})")
_MAX_TEXT = 200  # a make or lens name is short; a hostile block may hold megabytes
_UNPRINTABLE = re.compile(r"[\x00-\x1f\x7f]")


def exif_facts(image: Image.Image) -> dict[str, Any]:
    """The keys above that ``image`` (opened, not necessarily loaded) records."""
    try:
        exif = image.getexif()
    except Exception:  # a block Pillow cannot parse at all: no EXIF
        return {}
    facts: dict[str, Any] = {}
    for read in (_camera, _time, _lens, _position, _orientation):
        try:
            facts.update(read(exif))
        except Exception:  # one garbled part must not lose the others
            continue
    return facts


def _camera(exif: Image.Exif) -> dict[str, str]:
    make, model = _text(exif.get(_MAKE)), _text(exif.get(_MODEL))
    facts = {key: value for key, value in (("make", make), ("model", model)) if value}
    if make and model:
        # Canon writes "Canon" and "Canon EOS R5", NIKON "NIKON CORPORATION" and "NIKON D750".
        repeated = model.lower().startswith(make.split()[0].lower())
        facts["camera"] = model if repeated else f"{make} {model}"
    elif make or model:
        facts["camera"] = make or model
    return facts


def _time(exif: Image.Exif) -> dict[str, str]:
    inner = exif.get_ifd(_EXIF_IFD)
    for value in (inner.get(_DATE_TIME_ORIGINAL), inner.get(_DATE_TIME_DIGITIZED), exif.get(_DATE_TIME)):
        taken = _iso_time(_text(value))
        if taken:
            return {"taken": taken}
    return {}


def _iso_time(text: str | None) -> str | None:
    match = _EXIF_TIME.match(text or "")
    if not match:
        return None  # absent, or the "0000:00:00 00:00:00" and blanks of a camera without a clock
    try:
        return datetime(*map(int, match.groups())).isoformat()
    except ValueError:
        return None


def _lens(exif: Image.Exif) -> dict[str, str]:
    lens = _text(exif.get_ifd(_EXIF_IFD).get(_LENS_MODEL))
    return {"lens": lens} if lens else {}


def _position(exif: Image.Exif) -> dict[str, float]:
    gps = exif.get_ifd(_GPS_IFD)
    lat = _degrees(gps.get(_LAT), _text(gps.get(_LAT_REF)), "S", 90)
    lon = _degrees(gps.get(_LON), _text(gps.get(_LON_REF)), "W", 180)
    # One coordinate is no position.
    return {"lat": lat, "lon": lon} if lat is not None and lon is not None else {}


def _degrees(value: Any, ref: str | None, negative: str, most: float) -> float | None:
    """Degrees, minutes and seconds (or fewer parts) as signed decimal degrees."""
    if value is None:
        return None
    parts = value if isinstance(value, (tuple, list)) else (value,)
    if not 1 <= len(parts) <= 3:
        return None
    degrees = sum(float(part) / 60**i for i, part in enumerate(parts))  # a zero denominator reads as NaN
    if not math.isfinite(degrees) or not 0 <= degrees <= most:
        return None
    sign = -1 if ref and ref.strip().upper().startswith(negative) else 1
    return round(sign * degrees, 7)  # about a centimetre: more digits are noise


def _orientation(exif: Image.Exif) -> dict[str, int]:
    value = exif.get(_ORIENTATION)
    return {"orientation": value} if isinstance(value, int) and 1 <= value <= 8 else {}


def _text(value: Any) -> str | None:
    """A tag's text, trimmed of the NULs and spaces cameras pad with; None when empty."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if not isinstance(value, str):
        return None
    # A lone surrogate cannot be stored; control characters are no part of a name.
    value = value.encode("utf-8", "replace").decode("utf-8")
    value = _UNPRINTABLE.sub(" ", value).strip()[:_MAX_TEXT].strip()
    return value or None
