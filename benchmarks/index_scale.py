"""Search indexes at scale: build time, size, open time, latency, recall, filters and adds.

    python benchmarks/index_scale.py --sizes 100k,1m --workdir DIR
    python benchmarks/index_scale.py --sizes 10m --types auto --workdir DIR   # about an hour on 2 cores

Data: synthetic clustered unit vectors, 512-d by default. ``--centres`` Gaussian centres
(random unit vectors); each point is a centre plus Gaussian noise whose spectrum decays as
1/sqrt(i) over a random basis (noise norm ``--noise``), then normalised: a neighbourhood
structure of a few dozen effective dimensions, as CLIP embeddings have, rather than
isotropic noise (``--spectrum 0`` for that). Queries are new points from the same
distribution. Every item carries ``shard`` = id mod 100, so ``shard=7`` keeps 1 %.

Everything is measured through a real ``Collection``: items are committed with their vectors
(no model runs), each index type is built with ``update_index(force=True)``, then another
process opens the collection and searches it through ``search_vectors`` (filters, SQLite
look-ups and all), with ``OMP_WAIT_POLICY=PASSIVE`` as ``clipforge serve`` sets it. The
baseline is exact search in the same run: the ``Flat`` type where it
fits in memory, and a streaming scan of the float16 vectors always. Recall@10 is against
the exact top 10 of the stored vectors.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from clipforge import Collection
from clipforge.index import where as where_
from clipforge.index.ann import items
from clipforge.index.ann.exact import exact_search
from clipforge.index.store import NewItem

KIND = "image"
SHARDS = 100
FILTER = "shard=7"
CHUNK = 100_000
DEFAULT_TYPES = {
    100_000: ["Flat", "auto", "IVF1024,PQ64x4fs", "HNSW32"],
    1_000_000: ["Flat", "auto", "IVF4096,PQ32", "HNSW32"],
    10_000_000: ["auto"],
}


# -- data ---------------------------------------------------------------------------------
class Clustered:
    def __init__(self, dim: int, centres: int, noise: float, spectrum: float, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((centres, dim), dtype=np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        basis, _ = np.linalg.qr(rng.standard_normal((dim, dim)).astype(np.float32))
        scale = np.arange(1, dim + 1, dtype=np.float32) ** -spectrum
        scale *= noise / np.sqrt((scale**2).sum())
        self.noise = (scale[:, None] * basis.T).astype(np.float32)
        self.dim = dim

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = self.centres[rng.integers(0, len(self.centres), n)]
        x += rng.standard_normal((n, self.dim), dtype=np.float32) @ self.noise
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x


def make_model(folder: Path, dim: int) -> str:
    """A random dual encoder of ``dim``-d embeddings: the collection needs a model spec; no
    vector here comes from it."""
    from clipforge.models.presets import make_dual_encoder

    if not (folder / "config.json").exists():
        model, tokenizer, processor = make_dual_encoder("tiny", projection_dim=dim)
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        processor.save_pretrained(folder)
    return f"hf:{folder}"


def fill(path: Path, model: str, n: int, data: Clustered) -> float:
    """A collection of ``n`` items (reused when it exists, completed when a run stopped while
    filling it: chunks are drawn from seeds of their own); seconds spent committing."""
    started = time.perf_counter()
    with Collection.open_or_create(path, model) as coll:
        have = coll.store.counts()["images"]
        if have > n or have % CHUNK:
            raise SystemExit(f"{path} holds {have} items, not {n}: remove it")
        for start in range(have, n, CHUNK):
            count = min(CHUNK, n - start)
            vectors = data.sample(count, seed=1000 + start // CHUNK)
            with coll.writing():
                first = coll.append_vectors(vectors)
                coll.commit([NewItem(kind=KIND, key=f"v{start + i}", vector_row=first + i,
                                     metadata={"shard": (start + i) % SHARDS}) for i in range(count)])
            print(f"  committed {start + count:,}/{n:,}", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def truth(path: Path, queries: np.ndarray, where: str | None) -> tuple[np.ndarray, float]:
    """Exact top 10 of the stored vectors, and the seconds one query takes when scanned alone."""
    with Collection.open(path) as coll:
        if where is None:
            ids, rows = items.live(coll.store, KIND)
        else:
            ids, rows = coll.store.matching(KIND, where_.parse(where))
        _, best = exact_search(queries, 10, ids, rows, coll.read_vectors)
        started = time.perf_counter()
        exact_search(queries[:1], 10, ids, rows, coll.read_vectors)
        return best, time.perf_counter() - started


# -- one index type, measured in a process of its own --------------------------------------
def rss_bytes() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def recall(found: list[list[int]], best: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(b[b >= 0])) / max((b >= 0).sum(), 1) for f, b in zip(found, best)]))


def timed_searches(coll, queries, where=None):
    times, found = [], []
    for q in queries:
        start = time.perf_counter()
        hits = coll.search_vectors(q[None], k=10, where=where)[0]
        times.append(time.perf_counter() - start)
        found.append([h.id for h in hits])
    return np.array(times), found


def build(args) -> None:
    with Collection.open(args.measure) as coll:
        coll.set_index(args.type)
        coll.update_index([KIND], force=True)


def measure(args) -> dict:
    path, n, workdir = Path(args.measure), args.n, Path(args.workdir)
    queries = np.load(workdir / "queries.npy")
    best, best_filtered = np.load(workdir / "truth.npy"), np.load(workdir / "truth_filtered.npy")
    out: dict = {"type": args.type}
    with Collection.open(path) as coll:
        info = coll.indexes.describe()[KIND]
        out.update(built=info["type"], disk_B_per_vec=info["bytes_per_vector"], stored_recall=info["recall_at_10"],
                   mmapped=info["memory_mapped"], search=info["search"], build_s=info["build_seconds"])
    gc.collect()
    before = rss_bytes()
    started = time.perf_counter()
    coll = Collection.open(path)
    coll.search_index(KIND)
    out["open_s"] = time.perf_counter() - started
    out["open_rss_B_per_vec"] = (rss_bytes() - before) / n
    coll.search_vectors(queries[:5], k=10)  # first touches
    times, found = timed_searches(coll, queries)
    out.update(p50_ms=np.median(times) * 1e3, p99_ms=np.percentile(times, 99) * 1e3, recall=recall(found, best))
    batches = [queries[i : i + 32] for i in range(0, len(queries) - 31, 32)]
    started = time.perf_counter()
    for batch in batches:
        coll.search_vectors(batch, k=10)
    out["qps_batch32"] = 32 * len(batches) / (time.perf_counter() - started)
    out["rss_B_per_vec"] = (rss_bytes() - before) / n
    out["rss_total_MB"] = rss_bytes() / 1e6
    times, found = timed_searches(coll, queries[:100], where=FILTER)
    out.update(filter_p50_ms=np.median(times) * 1e3, filter_recall=recall(found, best_filtered[:100]))
    cold = []
    for q in queries[:20]:  # each as the first query with this filter since a commit
        coll.subsets.clear()
        cold.append(timed_searches(coll, q[None], where=FILTER)[0][0])
    out["filter_cold_p50_ms"] = np.median(cold) * 1e3
    allowed = np.array([r[0] for r in coll.store.db.execute(
        "SELECT item_id FROM item_values WHERE key='shard' AND num=7 ORDER BY item_id")], np.int64)
    index = coll.search_index(KIND)
    started = time.perf_counter()
    _, ids = index.search(queries[:100], 10, allowed=allowed)
    out["index_filter_ms"] = (time.perf_counter() - started) / 100 * 1e3
    out["index_filter_recall"] = recall([list(r[r >= 0]) for r in ids], best_filtered[:100])
    out.update(adding(coll, args))
    coll.close()
    return out


def adding(coll, args) -> dict:
    """1K items to searchable (no rebuild), then 20K more in 1K commits (one fold among them);
    everything added is removed again so that the next type sees the same collection."""
    data = Clustered(args.dim, args.centres, args.noise, args.spectrum)
    built_at = coll.indexes.describe()[KIND]["built_at"]
    added, out = [], {}
    for batch in range(21):
        vectors = data.sample(1000, seed=10**6 + batch)
        started = time.perf_counter()
        keys = [f"added{batch}-{i}" for i in range(1000)]
        with coll.writing():
            first = coll.append_vectors(vectors)
            coll.commit([NewItem(kind=KIND, key=key, vector_row=first + i, metadata={"shard": -1})
                         for i, key in enumerate(keys)])
        jobs = coll.update_index([KIND])  # what every write does at its end
        hit = coll.search_vectors(vectors[:1], k=1)[0][0]
        seconds = time.perf_counter() - started
        added += [item.id for item in coll.store.items_by_key(keys).values()]
        if batch == 0:
            out.update(add1k_s=seconds, add1k_found=hit.score > 0.999,
                       add1k_rebuilt=bool(jobs) or coll.indexes.describe()[KIND]["built_at"] != built_at)
            times, _ = timed_searches(coll, data.sample(100, seed=7))
            out["p50_ms_with_1k_fresh"] = np.median(times) * 1e3
            started_all = time.perf_counter()
        elif jobs:
            out["fold_s"] = seconds
    out["add_per_s"] = 20_000 / (time.perf_counter() - started_all)
    with coll.writing():
        coll.commit(removed=added)
    return out


# -- the run ------------------------------------------------------------------------------
def size(text: str) -> int:
    text = text.lower()
    scale = {"k": 1_000, "m": 1_000_000}.get(text[-1], 1)
    return int(float(text.rstrip("km")) * scale)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="100k,1m")
    parser.add_argument("--types", default=None, help="index types separated by ';', e.g. 'auto;Flat;HNSW32' "
                        "(default: per size)")
    parser.add_argument("--workdir", default=os.path.join(tempfile.gettempdir(), "clipforge-index-scale"))
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--centres", type=int, default=3000)
    parser.add_argument("--noise", type=float, default=1.0)
    parser.add_argument("--spectrum", type=float, default=0.5)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--keep", action="store_true", help="keep the collections for another run")
    # one index type, measured in a process of its own (run() starts these)
    parser.add_argument("--measure", metavar="COLLECTION", help=argparse.SUPPRESS)
    parser.add_argument("--type", help=argparse.SUPPRESS)
    parser.add_argument("--build", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure and args.build:
        build(args)
    elif args.measure:
        print(json.dumps(measure(args), default=float))
    else:
        run(args)


def run(args) -> None:
    workdir = Path(args.workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    data = Clustered(args.dim, args.centres, args.noise, args.spectrum)
    model = make_model(workdir / f"model-{args.dim}", args.dim)
    print(f"data: {args.dim}-d, {args.centres} centres, noise {args.noise}, spectrum i^-{args.spectrum}; "
          f"{args.queries} held-out queries; filter {FILTER} keeps 1 %; 2 cores shared", flush=True)
    for n in map(size, args.sizes.split(",")):
        path = workdir / f"n{n}"
        fill_s = fill(path, model, n, data)
        queries = data.sample(args.queries, seed=99)
        np.save(workdir / "queries.npy", queries)
        best, scan_s = truth(path, queries, None)
        best_filtered, _ = truth(path, queries, FILTER)
        np.save(workdir / "truth.npy", best)
        np.save(workdir / "truth_filtered.npy", best_filtered)
        seg = sum(f.stat().st_size for f in (path / "vectors").glob("*.f16"))
        print(f"\n== {n:,} vectors: committed in {fill_s:.0f} s; float16 segments {seg / n:.0f} B/vector; "
              f"exact scan of the segments, one query: {scan_s * 1e3:.0f} ms ==", flush=True)
        types = args.types.split(";") if args.types else DEFAULT_TYPES.get(n, ["Flat", "auto"])
        rows = []
        for kind in types:
            command = [sys.executable, __file__, "--measure", str(path), "--type", kind, "--n", str(n),
                       "--workdir", str(workdir), "--dim", str(args.dim), "--centres", str(args.centres),
                       "--noise", str(args.noise), "--spectrum", str(args.spectrum)]
            # As `clipforge serve` does: OpenMP threads that spin between searches take the
            # cores other processes need, and single queries wait on them (20x on a loaded box).
            env = {**os.environ, "OMP_WAIT_POLICY": os.environ.get("OMP_WAIT_POLICY", "PASSIVE")}
            # built in one process, searched in another: a clean slate for resident memory
            done = subprocess.run(command + ["--build"], capture_output=True, text=True, env=env)
            if not done.returncode:
                done = subprocess.run(command, capture_output=True, text=True, env=env)
            if done.returncode:
                print(f"{kind}: failed\n{done.stderr[-2000:]}", flush=True)
                continue
            rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
            report(rows[-1], scan_s)
        if not args.keep:
            shutil.rmtree(path)


def report(r: dict, scan_s: float) -> None:
    print(f"{r['type']:>18} -> {r['built']}: build {r['build_s']:.0f} s, disk {r['disk_B_per_vec']:.0f} B/vec, "
          f"{'mmapped' if r['mmapped'] else 'read into RAM'}, search {r['search']}", flush=True)
    print(f"{'':>18}    open {r['open_s']:.2f} s ({r['open_rss_B_per_vec']:.0f} B/vec resident), after queries "
          f"{r['rss_B_per_vec']:.0f} B/vec resident (the process: {r['rss_total_MB']:.0f} MB)", flush=True)
    print(f"{'':>18}    single query p50 {r['p50_ms']:.2f} ms p99 {r['p99_ms']:.2f} ms "
          f"({scan_s * 1e3 / r['p50_ms']:.0f}x faster than the exact scan), batch-32 {r['qps_batch32']:.0f} q/s, "
          f"recall@10 {r['recall']:.3f} (stored {r['stored_recall']})", flush=True)
    print(f"{'':>18}    filter 1%: p50 {r['filter_p50_ms']:.2f} ms repeated, {r['filter_cold_p50_ms']:.2f} ms the first "
          f"time after a commit, recall {r['filter_recall']:.3f}; "
          f"through the index alone {r['index_filter_ms']:.2f} ms recall {r['index_filter_recall']:.3f}", flush=True)
    print(f"{'':>18}    add 1K: searchable in {r['add1k_s']:.2f} s (found {r['add1k_found']}, rebuilt "
          f"{r['add1k_rebuilt']}), p50 then {r['p50_ms_with_1k_fresh']:.2f} ms; 20K more at {r['add_per_s']:.0f} "
          f"items/s" + (f", one fold {r['fold_s']:.1f} s" if "fold_s" in r else ""), flush=True)


if __name__ == "__main__":
    main()
