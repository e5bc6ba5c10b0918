"""Values from tables (CSV cells, Parquet columns, JSON members) as item metadata holds them.

Item metadata is JSON, and each scalar in it is also stored typed for filters
(``values.py``). Tables hold more types than JSON does; they are brought to the nearest JSON
value here, once, for every ingest path (tables, shards, imported embeddings).
"""

from __future__ import annotations

import datetime
import decimal
import math
from typing import Any


def metadata_value(value: Any) -> Any:
    """A table cell as item metadata holds it (JSON): times as ISO text, which filters read as
    times; NaN and null as absent (None); raw bytes dropped, as no filter or page can use them."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    if isinstance(value, (datetime.datetime, datetime.date, datetime.time)):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return metadata_value(float(value))
    if isinstance(value, datetime.timedelta):
        return value.total_seconds()
    if isinstance(value, dict):
        return {str(k): metadata_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [metadata_value(v) for v in value]
    if isinstance(value, (bytes, bytearray, memoryview)):
        return None
    return str(value)


def row_metadata(row: dict[str, Any], columns) -> dict[str, Any]:
    """The present values of ``columns`` in ``row``; an empty CSV cell is absent."""
    kept = {}
    for column in columns:
        value = metadata_value(row.get(column))
        if value is not None and value != "":
            kept[column] = value
    return kept
