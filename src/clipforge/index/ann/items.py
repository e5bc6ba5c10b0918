"""What the search index reads from the collection's database: live items and changes.

Every commit stamps the items it changes with its generation (``items.changed_at``), so the
items changed since an index was built are found through the ``items_changed`` index
without reading the rest. A generation is read before the items it bounds: a commit has
published all its rows by the time its generation is visible, so ``changed_at <= g`` is a
complete picture of the collection at ``g``.
"""

from __future__ import annotations

import numpy as np

_FETCH = 100_000


def _arrays(cursor, columns: int) -> np.ndarray:
    parts = []
    while rows := cursor.fetchmany(_FETCH):
        parts.append(np.array(rows, dtype=np.int64).reshape(-1, columns))
    return np.concatenate(parts) if parts else np.zeros((0, columns), np.int64)


def live(store, kind: str) -> tuple[np.ndarray, np.ndarray]:
    """(ids, vector rows) of the live items of ``kind``, by id."""
    cursor = store.db.execute("SELECT id, vector_row FROM items WHERE kind = ? AND removed = 0 ORDER BY id", (kind,))
    found = _arrays(cursor, 2)
    return found[:, 0].copy(), found[:, 1].copy()


def count_live(store, kind: str) -> int:
    return store.db.execute("SELECT COUNT(*) FROM items WHERE kind = ? AND removed = 0", (kind,)).fetchone()[0]


def changes(store, kind: str, after: int, upto: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, vector rows, removed) of the items of ``kind`` changed in generations (after, upto]."""
    cursor = store.db.execute(
        "SELECT id, vector_row, removed FROM items WHERE kind = ? AND changed_at > ? AND changed_at <= ? ORDER BY id",
        (kind, after, upto))
    found = _arrays(cursor, 3)
    return found[:, 0].copy(), found[:, 1].copy(), found[:, 2].astype(bool)


def count_changed(store, kind: str, after: int) -> int:
    return store.db.execute("SELECT COUNT(*) FROM items WHERE kind = ? AND changed_at > ?", (kind, after)).fetchone()[0]
