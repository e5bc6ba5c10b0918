"""Building a main index, and folding the fresh part into one without retraining.

A build reads the live items at a generation, trains the index type on a sample, adds every
vector in chunks, then tunes the search on held-out sample queries: items left out of the
training sample, each searched for its ten nearest other items and compared with the exact
answer computed while the vectors streamed past. The cheapest setting (nprobe or efSearch,
and how many candidates to re-rank) that reaches ``TARGET_RECALL`` (with a margin) is kept,
with the recall it measured.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import faiss
import numpy as np

from . import items
from .exact import CHUNK, TopK
from .factory import AUTO, effective_factory, is_lossless, knob_range, make, vectors_to_train
from .files import Manifest, open_files
from .main import MainIndex
from .settings import IndexSettings

TARGET_RECALL = 0.95
# The cheapest setting that reaches the target on 200 queries tends to be the luckiest one:
# on new queries it did 0.02 worse at 1M (0.943 for 0.966). Tuning aims higher by that much.
TUNE_MARGIN = 0.02
RECALL_QUERIES = 200
TRAIN_SAMPLE_MAX = 200_000  # k-means on more costs minutes on two cores and gains little
K_FACTORS = (4, 10, 20, 40)
K = 10

Progress = Callable[[int, int], None] | None


@dataclasses.dataclass
class Built:
    manifest: Manifest
    index: faiss.Index
    ids: np.ndarray
    rows: np.ndarray


def build(collection, kind: str, settings: IndexSettings, on_progress: Progress = None) -> Built:
    started = time.perf_counter()
    store, dim, read = collection.store, collection.dim, collection.read_vectors
    generation = store.generation  # read first: the items read next are at least this recent
    ids, rows = items.live(store, kind)
    count = len(ids)
    factory = effective_factory(settings.type, count, dim, settings.budget)
    note = ""
    if settings.type not in (AUTO, factory):
        note = f"exact until {vectors_to_train(settings.type, dim):,} vectors can train {settings.type}"
    index = make(factory, dim)
    rng = np.random.default_rng(generation)
    order = rng.permutation(count)
    held_out = np.sort(order[: min(RECALL_QUERIES, max(count - K - 1, 0))])
    trained_on = 0
    if not index.is_trained:
        sample = np.sort(order[len(held_out) :][:TRAIN_SAMPLE_MAX])
        index.train(read(rows[sample]))
        trained_on = count
    queries = read(rows[held_out])
    truth = TopK(queries, K + 1)  # the query's own item is among its nearest: left out below
    for start in range(0, count, CHUNK):
        vectors = read(rows[start : start + CHUNK])
        index.add(vectors)
        truth.update(vectors, ids[start : start + CHUNK])
        if on_progress:
            on_progress(min(start + CHUNK, count), count)
    manifest = Manifest(
        kind=kind, generation=generation, stem="", factory=factory, setting=settings.type, budget=settings.budget,
        positions=count, live=count, trained_on=trained_on, tuned_at=count, knob=0, k_factor=1,
        rerank=not is_lossless(index), recall_at_10=None, recall_queries=len(held_out), build_seconds=0.0,
        built_at=time.time(), note=note)
    main = MainIndex(manifest, index, ids, rows, read)
    if len(held_out):
        _tune(main, queries, ids[held_out], _others(truth.ids, ids[held_out]))
    manifest.build_seconds = round(time.perf_counter() - started, 3)
    return Built(manifest, index, ids, rows)


def fold(collection, directory, manifest: Manifest, on_progress: Progress = None) -> Built:
    """The main index with the items changed since its generation folded in: their old
    positions become tombstones, the live ones are added at new positions. No retraining."""
    store = collection.store
    generation = store.generation
    changed, changed_rows, removed = items.changes(store, manifest.kind, manifest.generation, generation)
    index, ids, rows = open_files(directory, manifest, mapped=False)  # a copy to add to
    ids = np.array(ids, np.int64)
    stale = np.isin(ids, changed)
    ids[stale] = -1
    added, added_rows = changed[~removed], changed_rows[~removed]
    for start in range(0, len(added), CHUNK):
        index.add(collection.read_vectors(added_rows[start : start + CHUNK]))
        if on_progress:
            on_progress(min(start + CHUNK, len(added)), len(added))
    ids = np.concatenate([ids, added])
    rows = np.concatenate([np.asarray(rows, np.int64), added_rows])
    folded = dataclasses.replace(
        manifest, generation=generation, positions=len(ids), live=int((ids >= 0).sum()),
        folded=manifest.folded + len(added))
    return Built(folded, index, ids, rows)


def _others(found: np.ndarray, query_ids: np.ndarray) -> np.ndarray:
    """The ten best of each row that are not the query's own item."""
    out = np.full((len(found), K), -1, np.int64)
    for i, (row, own) in enumerate(zip(found, query_ids)):
        others = row[row != own][:K]
        out[i, : len(others)] = others
    return out


def _recall(main: MainIndex, queries: np.ndarray, query_ids: np.ndarray, truth: np.ndarray) -> float:
    _, found, _ = main.search(queries, K + 1)
    found = _others(found, query_ids)
    hits = sum(len(set(f[f >= 0]) & set(t[t >= 0])) for f, t in zip(found, truth))
    return hits / max(int((truth >= 0).sum()), 1)


def _tune(main: MainIndex, queries: np.ndarray, query_ids: np.ndarray, truth: np.ndarray) -> None:
    """Set the manifest's knob and k_factor to the fastest setting that reaches the target
    recall with a margin (else the most accurate one tried), and its measured recall."""
    manifest = main.manifest
    _, knobs = knob_range(main.index)
    factors = K_FACTORS if manifest.rerank else (1,)
    reaching, best = [], None
    for factor in factors:
        manifest.k_factor = factor
        for knob in knobs:  # recall grows with the knob: stop at the first that is enough
            manifest.knob = knob
            recall = _recall(main, queries, query_ids, truth)
            if best is None or recall > best[0] + 1e-9:
                best = (recall, knob, factor)
            if recall >= TARGET_RECALL + TUNE_MARGIN:
                reaching.append((knob, factor, recall))
                break
    if reaching:
        timed = [(_seconds(main, queries, knob, factor), knob, factor, recall) for knob, factor, recall in reaching]
        _, manifest.knob, manifest.k_factor, manifest.recall_at_10 = min(timed)
    else:
        manifest.recall_at_10, manifest.knob, manifest.k_factor = best
    manifest.recall_at_10 = round(float(manifest.recall_at_10), 4)


def _seconds(main: MainIndex, queries: np.ndarray, knob: int, factor: int) -> float:
    """Median time of one query with this setting (queries come one at a time)."""
    main.manifest.knob, main.manifest.k_factor = knob, factor
    times = []
    for query in queries[:50]:
        start = time.perf_counter()
        main.search(query[None], K)
        times.append(time.perf_counter() - start)
    return float(np.median(times))
