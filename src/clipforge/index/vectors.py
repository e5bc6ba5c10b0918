"""Append-only float16 vector segments.

Row ``r`` lives in segment ``r // SEGMENT_ROWS`` at offset ``r % SEGMENT_ROWS``. Appends
write past the committed end and fsync; the caller then commits the new row count in
SQLite. Anything beyond the committed count (a batch whose transaction never committed) is
cut off by the next writer, under the collection's write lock (never by a reader: a
reader may be looking while a writer appends). Float16 halves memory and disk; its cosine error on
unit vectors stays under 1e-3.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import CollectionError

SEGMENT_ROWS = 1 << 20
_DTYPE = np.dtype("<f2")


class VectorSegments:
    def __init__(self, directory: Path, dim: int, committed_rows: int, segment_rows: int = SEGMENT_ROWS):
        # The folder is made by the first append, not here: opening a collection whose
        # folder was lost must not hide the loss behind a new empty one.
        self.directory = directory
        self.dim = dim
        self.rows = committed_rows
        self.segment_rows = segment_rows

    def _segment_path(self, index: int) -> Path:
        return self.directory / f"seg-{index:05d}.f16"

    def _row_bytes(self) -> int:
        return self.dim * _DTYPE.itemsize

    def _segment_count(self, rows: int) -> int:
        return -(-rows // self.segment_rows)

    def _rows_in_segment(self, index: int, rows: int) -> int:
        return max(0, min(self.segment_rows, rows - index * self.segment_rows))

    def shortfalls(self, rows: int | None = None) -> list[str]:
        """What is missing for the first ``rows`` rows (default: the committed ones), one line each."""
        rows = self.rows if rows is None else rows
        if rows and not self.directory.is_dir():
            return [f"{self.directory.name}/ is missing (it should hold {rows} vectors)"]
        problems = []
        for index in range(self._segment_count(rows)):
            path, wanted = self._segment_path(index), self._rows_in_segment(index, rows)
            try:
                present = path.stat().st_size // self._row_bytes()
            except FileNotFoundError:
                problems.append(f"{self.directory.name}/{path.name} is missing (it should hold {wanted} vectors)")
                continue
            if present < wanted:
                problems.append(f"{self.directory.name}/{path.name} holds {present} vectors, not {wanted}")
        return problems

    def present(self, rows: np.ndarray) -> np.ndarray:
        """Which of ``rows`` are stored whole on disk (a boolean per row)."""
        rows = np.asarray(rows, dtype=np.int64)
        segments, offsets = np.divmod(rows, self.segment_rows)
        ok = np.zeros(len(rows), dtype=bool)
        for index in np.unique(segments):
            try:
                stored = self._segment_path(int(index)).stat().st_size // self._row_bytes()
            except FileNotFoundError:
                continue
            mask = segments == index
            ok[mask] = offsets[mask] < stored
        return ok

    def resize(self, total_rows: int) -> None:
        """Make the segments exactly ``total_rows`` long, zero-filling what is missing.
        For repairs, under the write lock; rows filled with zeros are written next."""
        self.directory.mkdir(parents=True, exist_ok=True)
        self.rows = total_rows
        count = self._segment_count(total_rows)
        for path in self.directory.glob("seg-*.f16"):
            if int(path.stem.split("-")[1]) >= count:
                path.unlink()
        for index in range(count):
            with open(self._segment_path(index), "ab") as f:
                f.truncate(self._rows_in_segment(index, total_rows) * self._row_bytes())
                os.fsync(f.fileno())

    def overwrite(self, rows: np.ndarray, vectors: np.ndarray) -> None:
        """Write ``vectors`` at existing ``rows``, in place, and sync (repairs only)."""
        data = np.ascontiguousarray(vectors, dtype=_DTYPE)
        segments, offsets = np.divmod(np.asarray(rows, dtype=np.int64), self.segment_rows)
        for index in np.unique(segments):
            with open(self._segment_path(int(index)), "r+b") as f:
                for i in np.flatnonzero(segments == index):
                    f.seek(int(offsets[i]) * self._row_bytes())
                    f.write(data[i].tobytes())
                f.flush()
                os.fsync(f.fileno())

    def discard_uncommitted(self, committed_rows: int) -> None:
        """Cut every segment back to ``committed_rows``. Call only while holding the write lock."""
        self.rows = committed_rows
        full, rest = divmod(self.rows, self.segment_rows)
        problems = self.shortfalls()
        if problems:  # appending now would write past a hole
            raise CollectionError(problems[0])
        for path in sorted(self.directory.glob("seg-*.f16")):
            index = int(path.stem.split("-")[1])
            keep_rows = self.segment_rows if index < full else rest if index == full else 0
            keep = keep_rows * self._row_bytes()
            if keep == 0 and index >= full:
                path.unlink()
            elif path.stat().st_size > keep:
                with open(path, "r+b") as f:
                    f.truncate(keep)
                    os.fsync(f.fileno())

    def append(self, vectors: np.ndarray) -> int:
        """Write rows after the committed end; return the first new row number.

        The rows count only once the caller commits ``rows`` (now advanced) in SQLite.
        """
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape (n, {self.dim}), got {vectors.shape}")
        first = self.rows
        data = np.ascontiguousarray(vectors, dtype=_DTYPE)
        self.directory.mkdir(parents=True, exist_ok=True)
        row = first
        while len(data):
            index, offset = divmod(row, self.segment_rows)
            take = min(len(data), self.segment_rows - offset)
            with open(self._segment_path(index), "ab") as f:
                if f.tell() != offset * self._row_bytes():
                    raise RuntimeError(f"vector segment {index} is out of step with the collection")
                f.write(data[:take].tobytes())
                f.flush()
                os.fsync(f.fileno())
            data, row = data[take:], row + take
        self.rows = row
        return first


    def read(self, rows: np.ndarray | list[int], normalized: bool = True) -> np.ndarray:
        """Unit-length float32 vectors of the given rows, in the order given; with
        ``normalized=False``, the float16 vectors exactly as stored (an export)."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32 if normalized else _DTYPE)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.rows:
            raise IndexError("vector row out of range")
        segments, offsets = np.divmod(rows, self.segment_rows)
        for index in np.unique(segments):
            mask = segments == index
            count = self._rows_in_segment(int(index), self.rows)
            try:
                mapped = np.memmap(self._segment_path(int(index)), dtype=_DTYPE, mode="r", shape=(count, self.dim))
            except (OSError, ValueError):  # deleted or cut short behind the collection's back
                problems = self.shortfalls() or [f"{self.directory.name}/ cannot be read"]
                raise CollectionError(problems[0]) from None
            out[mask] = mapped[offsets[mask]]
            del mapped
        if not normalized:
            return out
        # Every stored vector was unit length before rounding to float16; renormalising puts
        # that back, so a cosine score never reads above 1.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
