"""Indexing the images a table names: ``clipforge index table.parquet --image-column path``.

A CSV, TSV or Parquet table names one image per row, as a path (relative to the table's
folder, or absolute) or an http(s) URL; its other columns (or those chosen) become the item's
metadata, filterable like any other. A local image is keyed by its absolute path, as a
folder's files are, so indexing it through a folder or a table gives the same item; a URL is
keyed by itself and fetched once, with a size limit and a timeout.

A row whose image cannot be read is recorded with its reason (listed by ``clipforge info``)
and not tried again until the file changes, or, for a URL, until ``retry_skipped``. A row
with an empty image cell is reported by the run. Rows naming the same image: the last wins.
"""

from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from ..data.facts import current_signature
from ..data.pairs import read_table_rows
from ..data.sources import MAX_URL_BYTES, URL_TIMEOUT_S, UrlSource, is_url
from ..errors import InputError, NotFoundError
from .cells import row_metadata
from .ingest import IndexReport, IngestOptions
from .listed import Listed, index_listed

TABLE_SUFFIXES = (".csv", ".tsv", ".tab", ".parquet", ".pq")


def is_table(path: str | os.PathLike) -> bool:
    return os.fspath(path).lower().endswith(TABLE_SUFFIXES)


class TableSpec(BaseModel):
    """What to index from a table, as a user gives it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    path: Path
    image_column: str = Field("image", min_length=1)
    meta_columns: tuple[str, ...] | None = None  # None: every column but the image's
    url_timeout_s: float = Field(URL_TIMEOUT_S, gt=0)
    url_max_bytes: int = Field(MAX_URL_BYTES, gt=0)
    retry_skipped: bool = False

    @classmethod
    def checked(cls, **values) -> "TableSpec":
        """The spec, or InputError with the first problem on one line."""
        try:
            return cls(**values)
        except ValidationError as e:
            first = e.errors()[0]
            where = ".".join(str(part) for part in first["loc"])
            raise InputError(f"table option {where}: {first['msg']}") from None


def read_listed(spec: TableSpec, report: IndexReport) -> list[Listed]:
    """The images the table names, each with its metadata."""
    path = spec.path.expanduser()
    if not path.is_file():
        raise NotFoundError(f"table {spec.path} does not exist")
    columns, rows = read_table_rows(path)
    meta_columns = [c for c in columns if c != spec.image_column] if spec.meta_columns is None else spec.meta_columns
    missing = [c for c in (spec.image_column, *meta_columns) if c not in columns]
    if missing:
        raise InputError(f"{spec.path} has no column {missing[0]!r} (columns: {', '.join(columns) or 'none'})")
    root = path.resolve().parent
    listed = []
    for number, row in enumerate(rows, start=1):
        cell = row.get(spec.image_column)
        image = "" if cell is None or (isinstance(cell, float) and math.isnan(cell)) else str(cell).strip()
        if not image:
            report.skipped += 1
            report.failures.append({"path": f"{spec.path} row {number}", "reason": f"empty {spec.image_column!r}"})
            continue
        metadata = row_metadata(row, meta_columns)
        if is_url(image):
            listed.append(Listed(image, UrlSource(image, spec.url_max_bytes, spec.url_timeout_s), None, None, metadata))
        else:
            listed.append(_local(root, image, metadata))
    return listed


def _local(root: Path, image: str, metadata: dict[str, Any]) -> Listed:
    path = os.path.realpath(os.path.join(root, os.path.expanduser(image)))
    try:
        info = os.stat(path)
        size, mtime_ns = info.st_size, info.st_mtime_ns
    except OSError:  # missing now: read, and recorded as skipped with the reason
        size, mtime_ns = -1, -1
    return Listed(path, path, size, mtime_ns, metadata, current_signature(path))


def index_table(collection, spec: TableSpec, options: IngestOptions) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport()
    listed = read_listed(spec, report)
    if not listed and not report.failures:
        raise InputError(f"table {spec.path} has no rows")
    with collection.writing():
        index_listed(collection, listed, options, report, retry_skipped=spec.retry_skipped)
    report.seconds = time.perf_counter() - started
    return report
