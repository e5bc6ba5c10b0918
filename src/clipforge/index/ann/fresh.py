"""The fresh part: live items changed since the main index's generation (added, updated,
revived), searched exactly beside it. It is caught up from the database by generation, so
adding N items costs O(N) and is searchable at once; the main index absorbs it in a fold."""

from __future__ import annotations

from collections.abc import Callable

import faiss
import numpy as np

from .factory import search_parameters


class FreshPart:
    def __init__(self, dim: int):
        self.dim = dim
        self.ids = np.zeros(0, np.int64)
        self.rows = np.zeros(0, np.int64)
        self._vectors = np.zeros((0, dim), np.float32)
        self._index = faiss.IndexFlatIP(dim)

    def __len__(self) -> int:
        return len(self.ids)

    def apply(self, ids: np.ndarray, rows: np.ndarray, removed: np.ndarray,
              read_vectors: Callable[[np.ndarray], np.ndarray]) -> None:
        """Take in changed items: the changed ones leave, the live ones come back with their vectors."""
        if not len(ids):
            return
        keep = ~np.isin(self.ids, ids)
        added = ~removed
        self.ids = np.concatenate([self.ids[keep], ids[added]])
        self.rows = np.concatenate([self.rows[keep], rows[added]])
        self._vectors = np.concatenate([self._vectors[keep], read_vectors(rows[added])])
        # Exact search through FAISS, as in an exact main index: the same arithmetic gives the
        # same scores, so an item scores alike before and after it is folded in.
        self._index = faiss.IndexFlatIP(self.dim)
        self._index.add(self._vectors)

    def within(self, allowed: np.ndarray | None) -> np.ndarray:
        """Positions of the fresh items in ``allowed`` (sorted ids), or all."""
        if allowed is None:
            return np.arange(len(self.ids))
        return np.flatnonzero(np.isin(self.ids, allowed, assume_unique=False))

    def search(self, queries: np.ndarray, k: int,
               allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray, int]:
        """(scores, ids, how many were eligible) of the best ``k`` fresh items per query."""
        n = len(queries)
        positions = self.within(allowed)
        take = min(k, len(positions))
        if take == 0:
            return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64), 0
        selector = None
        if allowed is not None:
            mask = np.zeros(len(self.ids), bool)
            mask[positions] = True
            selector = faiss.IDSelectorBitmap(np.packbits(mask, bitorder="little"))
        params = search_parameters(self._index, 0, selector, len(queries))
        scores, found = self._index.search(np.ascontiguousarray(queries, np.float32), take, params=params)
        ids = np.where(found >= 0, self.ids[np.maximum(found, 0)], -1)
        out_scores = np.full((n, k), -np.inf, np.float32)
        out_ids = np.full((n, k), -1, np.int64)
        out_scores[:, :take] = np.where(ids >= 0, scores, -np.inf)
        out_ids[:, :take] = ids
        return out_scores, out_ids, len(positions)
