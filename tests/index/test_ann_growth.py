"""Growth without rebuilds: adds are searchable at once beside the main index, folded in
without retraining, retrained when the collection has outgrown what the index was trained
on; removed and updated items never come back stale."""

from __future__ import annotations

import numpy as np
import pytest
from ann_support import Points, add, brute_force, build_model, recall, remove

from clipforge import Collection
from clipforge.index.ann import files, policy
from clipforge.index.ann.background import BackgroundIndexer
from clipforge.index.ann.policy import FOLD_AT

POINTS = Points(seed=10)


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return build_model(tmp_path_factory.mktemp("model-64"))


def manifest(coll):
    return files.read_manifest(coll.path / "index", "text")


def search(coll, queries, k=10):
    return coll.search_index("text").search(queries, k)


def test_adds_to_an_exact_index_give_what_a_rebuild_gives(tmp_path, model):
    queries = POINTS.sample(12, seed=1)
    with Collection.create(tmp_path / "c", model, index="Flat") as coll:
        add(coll, POINTS.sample(3000, seed=2), "a")
        coll.update_index()
        built = manifest(coll)
        for batch in range(5):  # five commits, searched between them
            add(coll, POINTS.sample(100, seed=3 + batch), f"b{batch}-")
            search(coll, queries)
        remove(coll, range(1, 300, 7))
        add(coll, POINTS.sample(50, seed=9), "a")  # the first 50 items get new vectors
        assert coll.update_index() == [] and manifest(coll).stem == built.stem  # nothing rebuilt
        incremental = search(coll, queries)
        assert len(coll.search_index("text").fresh) == 550
        coll.update_index(force=True)
        rebuilt = search(coll, queries)
        assert manifest(coll).stem != built.stem and len(coll.search_index("text").fresh) == 0
    np.testing.assert_array_equal(incremental[1], rebuilt[1])
    # The same items in the same order; the scores within float32 rounding, since 12 queries
    # are scored by a matrix product, whose sums may run in another order for another layout.
    np.testing.assert_allclose(incremental[0], rebuilt[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("kind", ["Flat", "IVF16,PQ8x4fs", "HNSW16"])
def test_removed_and_updated_items_never_come_back_stale(tmp_path, model, kind, monkeypatch):
    with Collection.create(tmp_path / "c", model, index=kind) as coll:
        original = POINTS.sample(2000, seed=11)
        ids = add(coll, original, "a")
        coll.update_index()
        assert manifest(coll).factory == kind
        gone, updated = ids[:10], ids[10:20]
        remove(coll, gone)
        assert add(coll, POINTS.sample(10, seed=12), "a", start=10) == updated  # the same items, new vectors
        new_vectors = coll.vectors_for_ids(updated)  # as stored (float16)
        queries = original[:20]  # each one's best match was its own item
        for state in ("fresh", "folded", "rebuilt"):
            if state == "folded":
                monkeypatch.setattr(policy, "FOLD_AT", 5)
                assert [job.action for job in coll.update_index()] == ["fold"]
                assert manifest(coll).positions == 2010 and manifest(coll).live == 1990  # 20 tombstones
            elif state == "rebuilt":
                coll.update_index(force=True)
            scores, found = search(coll, queries, k=20)
            assert (found >= 0).all() and not np.isin(found, gone).any(), state
            for row, col in np.argwhere(np.isin(found, updated)):  # scored by the new vector only
                new = new_vectors[updated.index(int(found[row, col]))]
                assert abs(scores[row, col] - queries[row] @ new) < 1e-5, state
            assert (scores[10:20, 0] < 0.999).all(), f"{state}: an updated item matched its old vector"
            hits = coll.search_vectors(queries, k=20, target="text")
            assert not {h.id for result in hits for h in result} & set(gone), state


def test_adding_to_a_trained_index_is_searchable_at_once_and_rebuilds_nothing(tmp_path, model):
    with Collection.create(tmp_path / "c", model, index="IVF32,PQ16x4fs") as coll:
        add(coll, POINTS.sample(4000, seed=20), "a")
        coll.update_index()
        built = manifest(coll)
        assert built.factory == "IVF32,PQ16x4fs" and built.trained_on == 4000
        new = POINTS.sample(1000, seed=21)
        new_ids = add(coll, new, "b")
        assert coll.update_index() == []
        scores, found = search(coll, new[:50], k=1)
        assert list(found[:, 0]) == new_ids[:50] and (scores[:, 0] > 0.999).all()
        assert manifest(coll).stem == built.stem


def test_many_adds_are_folded_in_without_retraining(tmp_path, model):
    queries = POINTS.sample(50, seed=30)
    with Collection.create(tmp_path / "c", model, index="IVF32,PQ16x4fs") as coll:
        add(coll, POINTS.sample(4000, seed=31), "a")
        coll.update_index()
        built = manifest(coll)
        add(coll, POINTS.sample(FOLD_AT + 1, seed=32), "b")  # 3.5x as many, under the retraining growth
        done = coll.update_index()
        assert [job.action for job in done] == ["fold"]
        folded = manifest(coll)
        assert folded.trained_on == built.trained_on and folded.folded == FOLD_AT + 1
        assert folded.generation == coll.store.generation and folded.live == 4000 + FOLD_AT + 1
        index = coll.search_index("text")
        assert len(index.fresh) == 0 and index.main.live_count == folded.live
        assert recall(index.search(queries, 10)[1], brute_force(coll, queries, 10)[1]) >= 0.9


def test_an_index_is_retrained_once_the_collection_outgrows_it_four_times(tmp_path, model):
    with Collection.create(tmp_path / "c", model, index="IVF16,PQ8x4fs") as coll:
        add(coll, POINTS.sample(1000, seed=40), "a")
        coll.update_index()
        add(coll, POINTS.sample(3001, seed=41), "b")
        done = coll.update_index()
        assert [job.action for job in done] == ["build"] and "retraining" in done[0].reason
        assert manifest(coll).trained_on == 4001


def test_auto_switches_to_an_approximate_index_well_past_its_threshold(tmp_path, model, monkeypatch):
    from clipforge.index.ann import factory

    monkeypatch.setattr(factory, "AUTO_EXACT_MAX", 1000)
    with Collection.create(tmp_path / "c", model) as coll:
        add(coll, POINTS.sample(900, seed=50), "a")
        coll.update_index()
        assert manifest(coll).factory == "Flat"
        add(coll, POINTS.sample(600, seed=51), "b")  # past the threshold, not past twice it
        assert coll.update_index() == []
        add(coll, POINTS.sample(600, seed=52), "c")
        assert [job.action for job in coll.update_index()] == ["build"]
        assert manifest(coll).factory.startswith("IVF")


def test_a_server_maintains_indexes_in_the_background_and_swaps_them_in(tmp_path, model):
    import threading

    path = tmp_path / "c"
    with Collection.create(path, model, index="IVF16,PQ8x4fs") as writer:
        add(writer, POINTS.sample(1000, seed=60), "a")
        writer.update_index()
    served = Collection.open(path)
    served.indexes.background = True
    lock = threading.Lock()

    def read(fn):
        with lock:
            return fn(served)

    before = served.search_index("text").main.manifest.stem
    with Collection.open(path) as writer:
        new = POINTS.sample(3001, seed=61)
        new_ids = add(writer, new, "b")  # the server's index is now due for retraining
    found = served.search_index("text").search(new[:5], 1)[1]
    assert list(found[:, 0]) == new_ids[:5]  # searchable at once, from the fresh part
    assert served.search_index("text").main.manifest.stem == before  # a search built nothing
    indexer = BackgroundIndexer([(path, read)], lambda p: Collection.open(p, check=False))
    done = indexer.tend(path, read)
    assert [job.action for job in done] == ["build"]
    index = served.search_index("text")
    assert index.main.manifest.stem != before and index.main.manifest.trained_on == 4001 and len(index.fresh) == 0
    assert list(index.search(new[:5], 1)[1][:, 0]) == new_ids[:5]
    indexer.stop()
    served.close()
