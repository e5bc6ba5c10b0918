"""The FAISS index: derived from the vectors, never the source of truth.

One index per item kind (images, texts), keyed by item id. It is written under ``index/``
with the collection's generation in its name; a stale or missing file is rebuilt from the
vector segments, and the whole folder can be deleted at any time. Search is exact inner
product (``IndexFlatIP``): on L2-normalised vectors that is cosine similarity.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import faiss
import numpy as np


def build_index(vectors: np.ndarray, ids: np.ndarray) -> faiss.Index:
    index = faiss.IndexIDMap2(faiss.IndexFlatIP(vectors.shape[1]))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def search_index(index: faiss.Index, queries: np.ndarray, k: int,
                 allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids), each of shape (n_queries, k'); k' <= k when the index is small. With
    ``allowed`` (sorted item ids), only those are ranked; missing places hold id -1."""
    k = min(k, index.ntotal if allowed is None else min(index.ntotal, len(allowed)))
    if k == 0:
        empty = np.zeros((len(queries), 0))
        return empty.astype(np.float32), empty.astype(np.int64)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    if allowed is None:
        return index.search(queries, k)
    selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
    return index.search(queries, k, params=faiss.SearchParameters(sel=selector))


class ExactIndex:
    """Exact inner-product search over one kind's live vectors."""

    def __init__(self, index: faiss.Index):
        self.index = index

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        return search_index(self.index, queries, k, allowed)


class IndexCache:
    """Index files under ``directory`` named by kind and generation."""

    # Bumped whenever the way an index is built changes, so older cache files are ignored.
    FORMAT = 2

    def __init__(self, directory: Path):
        self.directory = directory

    def _path(self, kind: str, generation: int) -> Path:
        return self.directory / f"{kind}-v{self.FORMAT}-g{generation}.faiss"

    def load(self, kind: str, generation: int) -> faiss.Index | None:
        path = self._path(kind, generation)
        if not path.exists():
            return None
        try:
            return faiss.read_index(str(path))
        except RuntimeError:  # a damaged cache file is only a cache: rebuild it
            return None

    def save(self, kind: str, generation: int, index: faiss.Index) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            path = self._path(kind, generation)
            # A unique temporary name: two threads or processes may save the same index at once.
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{kind}-", suffix=".tmp")
            os.close(fd)
            try:
                faiss.write_index(index, tmp)
                os.replace(tmp, path)
            finally:
                if os.path.exists(tmp):
                    os.unlink(tmp)
            for old in self.directory.glob(f"{kind}-*.faiss"):
                if old != path:
                    old.unlink(missing_ok=True)
        except OSError:  # read-only collection: searching still works from memory
            pass
