"""What a filter means, computed in Python from an item's metadata: the reference the SQL
that clipforge runs is checked against."""

from __future__ import annotations

import fnmatch
import re

from clipforge.index.values import stored, wanted

_GLOB = re.compile(r"[*?\[\]]")


def holds(metadata: dict, condition) -> bool:
    present = condition.key in metadata and stored(metadata[condition.key]) is not None
    if condition.op == "exists":
        return present
    if condition.op == "missing":
        return not present
    if not present:
        return False
    number, text = stored(metadata[condition.key])
    op = {"!=": "=", "!~": "~", "not in": "in"}.get(condition.op, condition.op)
    if op == "~":
        pattern = condition.values[0]
        hit = text is not None and (fnmatch.fnmatchcase(text, pattern) if _GLOB.search(pattern)
                                     else pattern.lower() in text.lower())
    elif op == "in":
        hit = any(_compare("=", value, number, text) for value in condition.values)
    else:
        hit = _compare(op, condition.values[0], number, text)
    return hit != (op != condition.op)


def _compare(op: str, value: str, number, text) -> bool:
    want_number, want_text = wanted(value)
    left, right = (number, want_number) if want_number is not None else (text, want_text)
    if left is None:
        return False
    return {"=": left == right, ">": left > right, ">=": left >= right, "<": left < right, "<=": left <= right}[op]
