"""The index on disk: a build killed with SIGKILL leaves a searchable collection that the next
search or write finishes; a read-only copy opens its index memory-mapped and writes nothing.

The tests run as root, whom file modes do not stop: what they check is that nothing in a
copy whose modes forbid writing is written, and that its index file is mapped."""

from __future__ import annotations

import fcntl
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from ann_support import Points, add, brute_force, build_model

from clipforge import Collection
from clipforge.index.ann import files

POINTS = Points(seed=20)
BUILDER = """
import sys
from clipforge import Collection
with Collection.open(sys.argv[1]) as coll:
    coll.indexes.update(wait=60)  # never put off by the test peeking at the lock
"""


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> str:
    return build_model(tmp_path_factory.mktemp("model-64"))


def builder_holds_lock(path) -> bool:
    fd = os.open(path / files.BUILD_LOCK, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return False
    except OSError:
        return True
    finally:
        os.close(fd)  # releases it, if this process got it


def kill_mid_build(path, seed: int) -> None:
    """Start a real process on a due rebuild and SIGKILL it at a random moment inside it."""
    proc = subprocess.Popen([sys.executable, "-c", BUILDER, str(path)])
    deadline = time.monotonic() + 60
    while not builder_holds_lock(path):
        assert proc.poll() is None and time.monotonic() < deadline, "the builder never started"
        time.sleep(0.005)
    time.sleep(random.Random(seed).uniform(0.0, 0.5))
    assert proc.poll() is None, "the build ended before it could be killed: make it longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()


@pytest.fixture
def due_rebuild(tmp_path, model):
    """A collection whose exact index is current, asked to become a graph index (a rebuild of
    several seconds), with items added since the exact one was built."""
    path = tmp_path / "c"
    with Collection.create(path, model, index="Flat") as coll:
        add(coll, POINTS.sample(25_000, seed=1), "a")
        coll.update_index()
        add(coll, POINTS.sample(200, seed=2), "b")
        coll.set_index("HNSW32")
    return path


@pytest.mark.parametrize("finisher", ["search", "write"])
def test_a_killed_rebuild_leaves_a_searchable_collection_that_the_next_search_or_write_finishes(
        due_rebuild, finisher):
    path = due_rebuild
    before = files.read_manifest(path / "index", "text")
    kill_mid_build(path, seed=len(finisher))
    assert files.read_manifest(path / "index", "text") == before  # the old index is still the one in use
    queries = POINTS.sample(10, seed=3)
    with Collection.open(path) as coll:
        coll.indexes.background = True  # search as things are, first
        scores, found = coll.search_index("text").search(queries, 10)
        np.testing.assert_array_equal(found, brute_force(coll, queries, 10)[1])
    with Collection.open(path) as coll:
        if finisher == "search":
            coll.search_vectors(queries, k=10, target="text")
        else:
            add(coll, POINTS.sample(1, seed=4), "c")
            coll.update_index()
        after = files.read_manifest(path / "index", "text")
        assert after.factory == "HNSW32" and after.generation == coll.store.generation
        assert not files.leftovers(path / "index", "text")
        assert sorted(p.name for p in (path / "index").iterdir()) == sorted(
            [f"{after.stem}.faiss", f"{after.stem}.ids.npy", f"{after.stem}.rows.npy", "text.json"])


READER = """
import json, sys
import numpy as np
from clipforge import Collection
queries = np.load(sys.argv[2])
with Collection.open(sys.argv[1]) as coll:
    hits = coll.search_vectors(queries, k=10, target="text")
    maps = open("/proc/self/maps").read()
    print(json.dumps({"ids": [[h.id for h in r] for r in hits],
                      "mapped": [p for p in maps.split() if p.endswith(".faiss")]}))
"""


def _snapshot(root):
    """Every file but SQLite's own shared-memory and log files, which any reader may create."""
    return {str(p.relative_to(root)): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*")
            if not p.name.endswith(("-wal", "-shm"))}


def _search_from_another_process(path, queries_file):
    done = subprocess.run([sys.executable, "-c", READER, str(path), str(queries_file)],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("state", ["current index", "no index"])
def test_a_read_only_copy_opens_its_index_memory_mapped_and_writes_nothing(tmp_path, model, state):
    original = tmp_path / "c"
    with Collection.create(original, model, index="IVF64,SQ8") as coll:  # a type FAISS maps
        add(coll, POINTS.sample(12_000, seed=5), "a")
        coll.update_index()
        add(coll, POINTS.sample(100, seed=6), "b")  # waiting in the fresh part
        queries = POINTS.sample(5, seed=7)
        expected = [[h.id for h in r] for r in coll.search_vectors(queries, k=10, target="text")]
    copy = tmp_path / "copy"
    shutil.copytree(original, copy)
    if state == "no index":
        shutil.rmtree(copy / "index")
    np.save(tmp_path / "q.npy", queries)
    subprocess.run(["chmod", "-R", "a-w", str(copy)], check=True)
    try:
        before = _snapshot(copy)
        result = _search_from_another_process(copy, tmp_path / "q.npy")
        assert _snapshot(copy) == before
    finally:
        subprocess.run(["chmod", "-R", "u+w", str(copy)], check=True)
    if state == "current index":
        assert result["ids"] == expected
        manifest = files.read_manifest(copy / "index", "text")
        assert result["mapped"] == [str(copy / "index" / f"{manifest.stem}.faiss")]
    else:  # an index built in memory for this process: as good, if not the same
        assert [len(r) for r in result["ids"]] == [10] * 5
        assert sum(len(set(a) & set(b)) for a, b in zip(result["ids"], expected)) >= 40
