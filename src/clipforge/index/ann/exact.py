"""Exact top-k over stored vectors read in chunks: the baseline every approximate answer is
measured against, and the answer of last resort when an approximate search comes back short."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

CHUNK = 65_536  # vectors read at once: 128 MB of float32 at 512-d


class TopK:
    """The best ``k`` (score, id) of each query over vectors seen chunk by chunk."""

    def __init__(self, queries: np.ndarray, k: int):
        self.queries = np.ascontiguousarray(queries, dtype=np.float32)
        self.k = k
        self.scores = np.full((len(queries), k), -np.inf, np.float32)
        self.ids = np.full((len(queries), k), -1, np.int64)

    def update(self, vectors: np.ndarray, ids: np.ndarray) -> None:
        if not len(ids) or not self.k:
            return
        scores = self.queries @ vectors.T
        take = min(self.k, len(ids))
        best = np.argpartition(-scores, take - 1, axis=1)[:, :take] if take < len(ids) else np.broadcast_to(
            np.arange(len(ids)), (len(scores), len(ids)))
        merged_scores = np.concatenate([self.scores, np.take_along_axis(scores, best, axis=1)], axis=1)
        merged_ids = np.concatenate([self.ids, np.asarray(ids, np.int64)[best]], axis=1)
        order = np.argsort(-merged_scores, axis=1, kind="stable")[:, : self.k]
        self.scores = np.take_along_axis(merged_scores, order, axis=1)
        self.ids = np.take_along_axis(merged_ids, order, axis=1)


def exact_search(queries: np.ndarray, k: int, ids: np.ndarray, rows: np.ndarray,
                 read_vectors: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(scores, ids) of the ``k`` best of the given items for each query, missing places -inf / -1."""
    best = TopK(queries, k)
    for start in range(0, len(ids), CHUNK):
        best.update(read_vectors(rows[start : start + CHUNK]), ids[start : start + CHUNK])
    return best.scores, best.ids
