"""The search of one kind of item: the main index and the fresh part, merged by score.

The main index answers for items unchanged since its generation, the fresh part (exact) for
the rest, so no item is answered for twice and none stale. An approximate search never
comes back short when enough items exist: a short answer is searched again as widely as the
index allows, and then exactly.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from . import items
from .exact import exact_search
from .fresh import FreshPart
from .main import MainIndex

# A filter that keeps at most this many items is answered exactly: as fast as any index,
# and exactly the top k of what it keeps.
EXACT_ALLOWED = 4096


class SearchIndex:
    def __init__(self, kind: str, dim: int, main: MainIndex | None, read_vectors: Callable[[np.ndarray], np.ndarray],
                 signature=None):
        self.kind = kind
        self.main = main
        self.fresh = FreshPart(dim)
        self.read_vectors = read_vectors
        self.signature = signature  # of the manifest it was loaded from
        self.in_memory = False      # built for this process only (a read-only collection)
        self.base = main.manifest.generation if main else 0
        self.seen = self.base
        self.changed = 0  # items changed since the main index's generation

    def catch_up(self, store, generation: int) -> None:
        """Take in the commits after the last one seen, up to ``generation``."""
        if generation <= self.seen:
            return
        ids, rows, removed = items.changes(store, self.kind, self.seen, generation)
        if self.main is not None:
            self.main.exclude(ids)
        self.fresh.apply(ids, rows, removed, self.read_vectors)
        self.seen = generation
        if len(ids):  # an item changed twice counts once
            self.changed = items.count_changed(store, self.kind, self.base)

    @property
    def live_count(self) -> int:
        return (self.main.live_count if self.main else 0) + len(self.fresh)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, ids) of the best ``k`` live items per query, within ``allowed`` (sorted
        item ids) when given; missing places hold -inf and -1."""
        queries = np.ascontiguousarray(queries, np.float32)
        if allowed is not None:
            allowed = np.asarray(allowed, np.int64)
            if len(allowed) <= EXACT_ALLOWED:
                return self.exact(queries, k, allowed)
        parts = [self.fresh.search(queries, k, allowed)]
        if self.main is not None:
            parts.append(self.main.search(queries, k, allowed))
        scores, ids, eligible = _merge(parts, k)
        short = np.flatnonzero((ids >= 0).sum(axis=1) < min(k, eligible))
        if len(short) and self.main is not None:
            wide = self.main.search(queries[short], k, allowed, widest=True)
            fresh = self.fresh.search(queries[short], k, allowed)
            scores[short], ids[short], _ = _merge([fresh, wide], k)
            short = short[(ids[short] >= 0).sum(axis=1) < min(k, eligible)]
            if len(short):
                scores[short], ids[short] = self.exact(queries[short], k, allowed)
        return scores, ids

    def exact(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """The exact answer, from the stored vectors of every eligible item."""
        positions = self.fresh.within(allowed)
        ids, rows = [self.fresh.ids[positions]], [self.fresh.rows[positions]]
        if self.main is not None:
            main_ids, main_rows = self.main.selected(allowed)
            ids.append(main_ids)
            rows.append(main_rows)
        ids, rows = np.concatenate(ids), np.concatenate(rows)
        order = np.argsort(rows, kind="stable")  # read the segments in order
        return exact_search(queries, k, ids[order], rows[order], self.read_vectors)


def _merge(parts, k: int) -> tuple[np.ndarray, np.ndarray, int]:
    scores = np.concatenate([p[0] for p in parts], axis=1)
    ids = np.concatenate([p[1] for p in parts], axis=1)
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), sum(p[2] for p in parts)
