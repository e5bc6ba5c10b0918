"""Index types through FAISS factory strings: each against exact search, the ``auto`` choice
and the memory budget, settings kept by the collection, filters through every type."""

from __future__ import annotations

import shutil

import faiss
import numpy as np
import pytest
from ann_support import Points, add, brute_force, build_model, recall

from clipforge import Collection
from clipforge.errors import InputError
from clipforge.index.ann import files
from clipforge.index.ann.factory import auto_factory, effective_factory
from clipforge.index.ann.searcher import EXACT_ALLOWED

N = 12_000
TYPES = ["Flat", "HNSW32", "IVF64,Flat", "IVF64,SQ8", "IVF64,PQ16x4fs"]
POINTS = Points()


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return build_model(tmp_path_factory.mktemp("model-64"))


@pytest.fixture(scope="module")
def built(tmp_path_factory, model) -> dict:
    """A collection of N texts, and a copy of it for each type with that type's index built."""
    root = tmp_path_factory.mktemp("ann")
    with Collection.create(root / "base", model) as coll:
        add(coll, POINTS.sample(N, seed=1), "t")
    paths = {}
    for kind in TYPES:
        paths[kind] = root / kind.replace(",", "_")
        shutil.copytree(root / "base", paths[kind])
        with Collection.open(paths[kind]) as coll:
            coll.set_index(kind)
            coll.update_index(["text"], force=True)
    return paths


def manifest_of(path):
    return files.read_manifest(path / "index", "text")


@pytest.mark.parametrize("kind", TYPES)
def test_each_type_finds_what_exact_search_finds(built, kind):
    manifest = manifest_of(built[kind])
    assert manifest.factory == kind and manifest.recall_queries == 200
    assert manifest.recall_at_10 >= 0.9, manifest
    queries = POINTS.sample(100, seed=2)
    with Collection.open(built[kind]) as coll:
        scores, ids = coll.search_index("text").search(queries, 10)
        truth_scores, truth = brute_force(coll, queries, 10)
        # new queries do about as well as the held-out ones measured at build time
        assert recall(ids, truth) >= manifest.recall_at_10 - 0.03, (kind, recall(ids, truth))
        # scores are exact whatever the index: lossy ones re-rank from the stored vectors
        stored = {int(i): v for i, v in zip(ids[0], coll.vectors_for_ids(ids[0].tolist()))}
        np.testing.assert_allclose(scores[0], [queries[0] @ stored[int(i)] for i in ids[0]], atol=1e-5)
        hits = coll.search_vectors(queries[:1], k=10, target="text")[0]
        assert [h.id for h in hits] == list(ids[0])
    if kind == "Flat":
        np.testing.assert_array_equal(ids, truth)
        np.testing.assert_allclose(scores, truth_scores, atol=1e-5)


@pytest.mark.parametrize("kind", TYPES)
def test_a_filter_through_each_type_gives_the_exact_top_k_of_few_and_a_full_page_of_many(built, kind):
    queries = POINTS.sample(20, seed=3)
    with Collection.open(built[kind]) as coll:
        index = coll.search_index("text")
        all_ids = np.sort(np.array([r[0] for r in coll.store.db.execute("SELECT id FROM items")]))
        few = all_ids[::200]  # 60 items
        _, found = index.search(queries, 10, allowed=few)
        np.testing.assert_array_equal(found, brute_force(coll, queries, 10, allowed=few)[1])
        many = all_ids[all_ids % 2 == 0]  # half of them: more than are ranked exactly
        assert len(many) > EXACT_ALLOWED
        _, found = index.search(queries, 10, allowed=many)
        assert (found >= 0).all() and np.isin(found, many).all()
        assert recall(found, brute_force(coll, queries, 10, allowed=many)[1]) >= 0.85
        # the same through the collection's query path, metadata filter and all
        hits = coll.search_vectors(queries[:1], k=10, target="text", where="shard=3")[0]
        assert len(hits) == 10 and all(h.metadata["shard"] == 3 for h in hits)


def test_a_short_approximate_answer_is_filled(built):
    """None of the allowed items lies in the lists a narrow search probes: it comes back
    empty, and the page is filled by searching wider."""
    with Collection.open(built["IVF64,PQ16x4fs"]) as coll:
        index = coll.search_index("text")
        index.main.manifest.knob = 1
        ids, rows = index.main.selected(None)
        quantizer = faiss.extract_index_ivf(index.main.index).quantizer
        query = POINTS.centres[:1]
        _, near = quantizer.search(query, 20)
        _, lists = quantizer.search(coll.read_vectors(rows), 1)
        allowed = np.sort(ids[~np.isin(lists[:, 0], near)])
        assert len(allowed) > EXACT_ALLOWED
        first, _, _ = index.main.search(query, 10, allowed)
        assert np.isinf(first).all()  # the narrow search found none of them
        _, found = index.search(query, 10, allowed=allowed)
        assert (found >= 0).all() and np.isin(found, allowed).all()
        assert recall(found, brute_force(coll, query, 10, allowed=allowed)[1]) >= 0.8


def test_auto_chooses_by_size_and_budget():
    assert auto_factory(50_000, 512, None) == "Flat"
    assert auto_factory(1_000_000, 512, None) == "IVF4096,PQ64x4fs"
    assert auto_factory(1_000_000, 512, 50_000_000) == "IVF4096,PQ32x4fs"  # a tighter budget: smaller codes
    assert auto_factory(50_000, 512, 10_000_000) == "IVF1024,PQ64x4fs"  # exact would not fit
    with pytest.raises(InputError, match="no index fits 10,000,000 vectors in an index memory budget of 10.0 MB"):
        auto_factory(10_000_000, 512, 10_000_000)
    assert effective_factory("IVF4096,PQ64x4fs", 1000, 512, None) == "Flat"  # too few to train: exact meanwhile
    with pytest.raises(InputError, match="over the index memory budget"):
        effective_factory("HNSW32", 1_000_000, 512, 100_000_000)


def test_auto_builds_what_fits_the_budget(tmp_path, model):
    with Collection.create(tmp_path / "c", model, index_memory="1MB") as coll:
        add(coll, POINTS.sample(N, seed=4), "t")  # exact would need 3.2 MB
        coll.update_index()
        info = coll.info()["index"]["text"]
        assert info["type"] == "IVF256,PQ8x4fs" and info["setting"] == "auto, at most 1.0MB"


@pytest.mark.parametrize("index, memory, message", [
    ("IVFbogus", None, "unknown index type 'IVFbogus'"),
    ("IDMap,Flat", None, "leave out IDMap"),
    ("IVF64,PQ16,RFlat", None, "leave out the refinement"),
    (" ", None, "not empty"),
    ("auto", "lots", "index memory 'lots'"),
    ("auto", "-5", "index memory '-5'"),
])
def test_bad_index_settings_get_one_clear_line(tmp_path, model, index, memory, message):
    with pytest.raises(InputError, match=message) as caught:
        Collection.create(tmp_path / "c", model, index=index, index_memory=memory)
    assert "\n" not in str(caught.value)
    assert not (tmp_path / "c" / "collection.sqlite").exists()


def test_settings_are_kept_and_later_writes_use_them(tmp_path, model):
    path = tmp_path / "c"
    with Collection.create(path, model, index="HNSW16") as coll:
        add(coll, POINTS.sample(1000, seed=5), "t")
        assert coll.update_index() and coll.info()["index"]["text"]["type"] == "HNSW16"
    with Collection.open_or_create(path, index="IVF8,PQ8x4fs", index_memory="2GB") as coll:
        assert coll.indexes.settings.type == "IVF8,PQ8x4fs" and coll.indexes.settings.budget == 2_000_000_000
        done = coll.update_index()
        assert [job.reason for job in done] == ["the index settings are now IVF8,PQ8x4fs, at most 2.0GB"]
        assert coll.info()["index"]["text"]["type"] == "IVF8,PQ8x4fs"
    with Collection.open(path) as coll:  # nothing more to do once it is built as asked
        assert coll.indexes.settings.type == "IVF8,PQ8x4fs" and coll.update_index() == []


def test_a_type_that_needs_more_vectors_to_train_searches_exactly_meanwhile(tmp_path, model):
    with Collection.create(tmp_path / "c", model, index="IVF64,PQ16x4fs") as coll:
        add(coll, POINTS.sample(300, seed=6), "t")
        coll.update_index()
        info = coll.info()["index"]["text"]
        assert info["type"] == "Flat" and "exact until 2,496 vectors can train IVF64,PQ16x4fs" in info["note"]
        add(coll, POINTS.sample(2200, seed=7), "u")
        coll.update_index()
        assert coll.info()["index"]["text"]["type"] == "IVF64,PQ16x4fs"
