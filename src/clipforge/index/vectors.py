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

SEGMENT_ROWS = 1 << 20
_DTYPE = np.dtype("<f2")


class VectorSegments:
    def __init__(self, directory: Path, dim: int, committed_rows: int, segment_rows: int = SEGMENT_ROWS):
        self.directory = directory
        self.dim = dim
        self.rows = committed_rows
        self.segment_rows = segment_rows
        directory.mkdir(parents=True, exist_ok=True)

    def _segment_path(self, index: int) -> Path:
        return self.directory / f"seg-{index:05d}.f16"

    def _row_bytes(self) -> int:
        return self.dim * _DTYPE.itemsize

    def discard_uncommitted(self, committed_rows: int) -> None:
        """Cut every segment back to ``committed_rows``. Call only while holding the write lock."""
        self.rows = committed_rows
        full, rest = divmod(self.rows, self.segment_rows)
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


    def read(self, rows: np.ndarray | list[int]) -> np.ndarray:
        """Unit-length float32 vectors of the given rows, in the order given."""
        rows = np.asarray(rows, dtype=np.int64)
        out = np.empty((len(rows), self.dim), dtype=np.float32)
        if len(rows) == 0:
            return out
        if rows.min() < 0 or rows.max() >= self.rows:
            raise IndexError("vector row out of range")
        segments, offsets = np.divmod(rows, self.segment_rows)
        for index in np.unique(segments):
            mask = segments == index
            count = self.rows - index * self.segment_rows
            mapped = np.memmap(
                self._segment_path(int(index)), dtype=_DTYPE, mode="r",
                shape=(min(count, self.segment_rows), self.dim),
            )
            out[mask] = mapped[offsets[mask]]
            del mapped
        # Every stored vector was unit length before rounding to float16; renormalising puts
        # that back, so a cosine score never reads above 1.
        out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
        return out
