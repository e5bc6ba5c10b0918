"""A main index loaded for searching: the FAISS index (labels are positions), the item id and
vector row at each position, and which positions no longer count.

A position stops counting when it is a tombstone or its item changed after the index's
generation (updated, removed): such items are served by the fresh part, so the main index
must not answer for them. Excluded positions are kept out *during* the search with an
``IDSelectorBitmap``, so k answers still come back. Lossy indexes (product quantisation)
propose ``k * k_factor`` candidates, which are re-ranked exactly from the float16 vectors.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import faiss
import numpy as np

from .factory import knob_limit, search_parameters
from .files import Manifest

CANDIDATES_MAX = 4096  # re-ranked per query at most, beyond what the page itself needs
FILTER_WIDEN = 4       # see search()
FILTER_MORE = 4        # candidates re-ranked by a filtered or widest search, beyond the usual
_RESCORE_CHUNK = 32_768


class MainIndex:
    def __init__(self, manifest: Manifest, index: faiss.Index, ids: np.ndarray, rows: np.ndarray,
                 read_vectors: Callable[[np.ndarray], np.ndarray]):
        self.manifest = manifest
        self.index = index
        self.ids, self.rows = ids, rows
        self.read_vectors = read_vectors
        self._excluded = None if manifest.live == manifest.positions else np.asarray(ids) < 0
        self._live = manifest.live
        self._bits: np.ndarray | None = None
        self._position_of: np.ndarray | None = None

    @property
    def live_count(self) -> int:
        return self._live

    # -- which positions count ---------------------------------------------------------
    def positions_of(self, item_ids: np.ndarray) -> np.ndarray:
        """The position of each item id in this index, -1 where it has none."""
        if self._position_of is None:  # built on first need: a dense array over item ids
            ids = np.asarray(self.ids)
            valid = ids >= 0
            size = int(ids.max()) + 1 if valid.any() else 0
            self._position_of = np.full(size, -1, np.int32 if len(ids) < 2**31 else np.int64)
            self._position_of[ids[valid]] = np.flatnonzero(valid)
        item_ids = np.asarray(item_ids, np.int64)
        inside = (item_ids >= 0) & (item_ids < len(self._position_of))
        found = np.full(len(item_ids), -1, np.int64)
        found[inside] = self._position_of[item_ids[inside]]
        return found

    def exclude(self, item_ids: np.ndarray) -> None:
        """Stop answering for these items (changed since this index was built)."""
        positions = self.positions_of(item_ids)
        positions = positions[positions >= 0]
        if not len(positions):
            return
        if self._excluded is None:
            self._excluded = np.zeros(self.manifest.positions, bool)
        fresh = positions[~self._excluded[positions]]
        self._excluded[fresh] = True
        self._live -= len(fresh)
        self._bits = None

    def _selection(self, allowed: np.ndarray | None) -> tuple[np.ndarray | None, int]:
        """(packed bitmap of the positions to search, or None for all; how many they are)."""
        if allowed is None:
            if self._excluded is None:
                return None, self._live
            if self._bits is None:
                self._bits = np.packbits(~self._excluded, bitorder="little")
            return self._bits, self._live
        mask = np.zeros(self.manifest.positions, bool)
        positions = self.positions_of(allowed)
        mask[positions[positions >= 0]] = True
        if self._excluded is not None:
            mask &= ~self._excluded
        return np.packbits(mask, bitorder="little"), int(mask.sum())

    def selected(self, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """(ids, rows) of the items this index answers for, within ``allowed``."""
        bits, _ = self._selection(allowed)
        keep = np.ones(self.manifest.positions, bool) if bits is None else np.unpackbits(
            bits, count=self.manifest.positions, bitorder="little").astype(bool)
        positions = np.flatnonzero(keep)
        return np.asarray(self.ids)[positions].astype(np.int64), np.asarray(self.rows)[positions].astype(np.int64)

    # -- searching ---------------------------------------------------------------------
    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None, *, knob: int | None = None,
               widest: bool = False) -> tuple[np.ndarray, np.ndarray, int]:
        """(scores, ids, how many items were eligible) of the best ``k`` per query; missing
        places hold -inf and -1. ``widest`` searches as widely as the index allows."""
        bits, eligible = self._selection(allowed)
        if eligible == 0 or k == 0:
            return _empty(len(queries), k) + (eligible,)
        manifest = self.manifest
        knob = knob or manifest.knob
        factor = manifest.k_factor
        if manifest.tuned_at:  # each probed list holds more items once more were folded in
            factor = math.ceil(factor * max(1.0, self._live / manifest.tuned_at))
        if widest:
            knob = knob_limit(self.index) or knob
            factor *= FILTER_MORE  # more competitors for each place
        elif allowed is not None:
            # A filter keeping a share s of the items puts the k best of them about 1/s times
            # further out: probe that many more lists (and then some), re-rank more of them.
            # Measured at 1M with s = 1 %: 0.67 recall@10 probing 64 times wider, 0.95 with this.
            widen = self._live / eligible * FILTER_WIDEN
            knob = int(min(math.ceil(knob * widen), knob_limit(self.index) or knob)) if knob else knob
            factor *= FILTER_MORE
        wanted = min(k * factor, max(k, CANDIDATES_MAX)) if manifest.rerank else k
        selector = None if bits is None else faiss.IDSelectorBitmap(bits)
        params = search_parameters(self.index, knob, selector, len(queries))
        scores, positions = self.index.search(np.ascontiguousarray(queries, np.float32), min(wanted, eligible),
                                              params=params)
        if manifest.rerank:
            scores = self._rescore(queries, positions)
        ids = np.where(positions >= 0, np.asarray(self.ids)[np.maximum(positions, 0)], -1).astype(np.int64)
        scores = np.where(ids >= 0, scores, -np.inf).astype(np.float32)
        order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return _pad(np.take_along_axis(scores, order, 1), np.take_along_axis(ids, order, 1), k) + (eligible,)

    def _rescore(self, queries: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Exact scores of the candidates, from the collection's own vectors."""
        valid = positions >= 0
        rows = np.asarray(self.rows)[positions[valid]]
        unique, where = np.unique(rows, return_inverse=True)
        vectors = self.read_vectors(unique)
        flat = np.full(positions.size, -np.inf, np.float32)
        hits = np.flatnonzero(valid.ravel())
        query_of = hits // positions.shape[1]
        for start in range(0, len(hits), _RESCORE_CHUNK):  # one dot product per (candidate, its query)
            part = slice(start, start + _RESCORE_CHUNK)
            flat[hits[part]] = np.einsum("ij,ij->i", vectors[where[part]], queries[query_of[part]])
        return flat.reshape(positions.shape)


def _empty(n: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    return np.full((n, k), -np.inf, np.float32), np.full((n, k), -1, np.int64)


def _pad(scores: np.ndarray, ids: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    if scores.shape[1] >= k:
        return scores, ids
    missing = k - scores.shape[1]
    n = len(scores)
    return (np.concatenate([scores, np.full((n, missing), -np.inf, np.float32)], 1),
            np.concatenate([ids, np.full((n, missing), -1, np.int64)], 1))
