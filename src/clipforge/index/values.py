"""Metadata values as filters compare them: a number, a text, or both.

An item's metadata is a JSON object; each scalar in it is also stored typed (``item_values``)
so that SQLite's indexes can answer a filter before ranking. A number is a number; ``true``
and ``false`` are 1 and 0 (and their words); a text that reads as a date or a time is kept
as text *and* as seconds since 1970, so ``taken>=2023-06-01`` compares numbers whether the
value came from EXIF, a CSV column or a JSON sidecar. Times without a zone are taken as UTC:
cameras record local time with no zone, and a filter typed by a person means that same clock.
"""

from __future__ import annotations

import math
import re
from datetime import datetime, timezone
from typing import Any

# 2023-06-01, 2023-06-01T12:30, 2023-06-01 12:30:45.5, 2023-06-01T12:30:45+02:00, and EXIF's
# 2023:06:01 12:30:45.
_TIME = re.compile(
    r"^(\d{4})[-:](\d{2})[-:](\d{2})"
    r"(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?"
    r"(Z|[+-]\d{2}:?\d{2})?$"
)
_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?$")


def parse_time(text: str) -> float | None:
    """Seconds since 1970 (UTC) of a date or time written as above; None if it is not one."""
    match = _TIME.match(text.strip())
    if not match:
        return None
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        moment = datetime(int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0),
                          int((fraction or "0").ljust(6, "0")), tzinfo=timezone.utc)
    except ValueError:  # 2023-13-45
        return None
    offset = 0
    if zone and zone != "Z":
        sign = -1 if zone[0] == "-" else 1
        digits = zone[1:].replace(":", "")
        offset = sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60)
    return moment.timestamp() - offset


def stored(value: Any) -> tuple[float | None, str | None] | None:
    """(number, text) to store for a metadata value; None for what no filter compares
    (null, lists, objects, non-finite numbers)."""
    if isinstance(value, bool):
        return float(value), "true" if value else "false"
    if isinstance(value, (int, float)):
        return (float(value), None) if math.isfinite(value) else None
    if isinstance(value, str):
        # A table column is text even where it holds numbers: "7" also compares as 7.
        return (float(value) if _NUMBER.match(value.strip()) else parse_time(value)), value
    return None


def wanted(text: str) -> tuple[float | None, str]:
    """(number, text) a filter's value stands for: a number or a time also compares as a number."""
    text = text.strip()
    if _NUMBER.match(text):
        return float(text), text
    if text.lower() in ("true", "false"):
        return float(text.lower() == "true"), text.lower()
    return parse_time(text), text
