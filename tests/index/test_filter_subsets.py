"""A filter's matching items are remembered for the next query with that filter, and
forgotten at the next commit, made by this process or another."""

from __future__ import annotations

import numpy as np
import pytest

from clipforge import Collection
from clipforge.index.query import EXACT_SUBSET_MAX
from clipforge.index.store import NewItem


def _unit(rng, n, dim):
    v = rng.standard_normal((n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def _top(coll, query, group, k=5):
    """The exact top k of the live images in ``group``, from the stored vectors."""
    rows = coll.store.db.execute(
        "SELECT id, vector_row, metadata FROM items WHERE kind='image' AND removed=0").fetchall()
    keep = [(i, r) for i, r, m in rows if f'"group": {group}' in m]
    scores = coll.read_vectors([r for _, r in keep]) @ query
    return [keep[j][0] for j in np.argsort(-scores)[:k]]


@pytest.fixture
def grouped(tmp_path, tiny_clip_spec):
    rng = np.random.default_rng(0)
    with Collection.create(tmp_path / "c", model=tiny_clip_spec) as coll:
        vectors = _unit(rng, 300, coll.dim)
        with coll.writing():
            first = coll.append_vectors(vectors)
            coll.commit([NewItem(kind="image", key=f"v{i}", vector_row=first + i, metadata={"group": i % 3})
                         for i in range(300)])
    return tmp_path / "c", vectors


def test_a_filter_used_again_sees_every_commit_since(grouped):
    path, vectors = grouped
    query = vectors[1]
    with Collection.open(path) as reader:
        first = [h.id for h in reader.search_vectors(query[None], k=5, where="group=1")[0]]
        assert first == _top(reader, query, 1)
        assert [h.id for h in reader.search_vectors(query[None], k=5, where="group=1")[0]] == first  # again
        moved = first[0]
        with Collection.open(path) as writer, writer.writing():  # another handle: as another process would
            item = writer.store.get_items({moved})[moved]
            writer.commit([NewItem(kind="image", key=f"v{item.vector_row}", vector_row=item.vector_row,
                                   metadata={"group": 2})], removed=[first[1]])
        after = [h.id for h in reader.search_vectors(query[None], k=5, where="group=1")[0]]
        assert moved not in after and first[1] not in after
        assert after == _top(reader, query, 1)
        assert moved in [h.id for h in reader.search_vectors(query[None], k=5, where="group=2")[0]]


def test_the_remembered_subsets_stay_within_their_limits(grouped):
    path, vectors = grouped
    with Collection.open(path) as coll:
        for group in range(3):
            for where in (f"group={group}", f"group!={group}", f"group in {group},7"):
                coll.search_vectors(vectors[:1], k=3, where=where)
        entries = coll.subsets._entries
        assert 0 < len(entries) <= coll.subsets.max_entries
        assert sum(s.nbytes for s in entries.values()) <= coll.subsets.max_bytes
        assert all(s.vectors is None or len(s.ids) <= EXACT_SUBSET_MAX for s in entries.values())
