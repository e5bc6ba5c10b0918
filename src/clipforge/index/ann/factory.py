"""Index types as FAISS factory strings: the ``auto`` choice, what a type costs in memory,
and how it is searched.

``auto`` follows autofaiss's reasoning, sized for a small machine: below ``AUTO_EXACT_MAX``
vectors an exact scan is fast enough and needs no training; above it an inverted file with
4-bit fast-scan product quantisation (``IVF{n},PQ{m}x4fs``), whose candidates are re-ranked
exactly from the collection's float16 vectors. Graph indexes (``HNSW32``) are there to be
chosen by name: on two cores they take many times longer to build and hold every vector in
float32.
"""

from __future__ import annotations

import functools
import math
import os

import faiss

from ...errors import InputError

AUTO = "auto"
AUTO_EXACT_MAX = 100_000
MAX_LISTS = 4096          # k-means beyond this costs more to train than it saves at 10M on 2 cores
POINTS_PER_CENTROID = 39  # FAISS warns below this many training points per centroid
# A flat index scans for fewer queries than this in one thread when given a selector, and
# wakes its thread pool when not. Measured on this project's 2-core machine under other load,
# one query over 10K vectors: 0.65 ms with a selector that keeps everything, 14 ms without.
# A single query has nothing to share between threads: it always gets one. From this many
# queries on, a flat index scores them by matrix product (BLAS), which reads the vectors once
# for all of them; FAISS's own threshold is 128,000 queries. Measured here at 100K 384-d,
# 16 queries: 1.3 ms each by BLAS, 4.4 ms one by one; at 10K: 0.09 against 0.14.
FEW_QUERIES = 12
faiss.cvar.distance_compute_blas_threshold = FEW_QUERIES
OWN_BYTES_PER_VECTOR = 12  # beside FAISS's codes: item id and vector row per position, id -> position


def default_budget() -> int:
    """Resident bytes ``auto`` may give the index when no budget is set: a quarter of the RAM."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE") // 4


def make(factory: str, dim: int) -> faiss.Index:
    """An empty index of type ``factory`` for inner products, or InputError saying why not."""
    if "IDMap" in factory:
        raise InputError(f"index type {factory!r}: leave out IDMap, clipforge keeps its own item ids")
    if "Refine" in factory or "RFlat" in factory:
        raise InputError(f"index type {factory!r}: leave out the refinement, clipforge re-ranks from its own vectors")
    try:
        index = faiss.index_factory(dim, factory, faiss.METRIC_INNER_PRODUCT)
    except RuntimeError as e:
        lines = str(e).strip().splitlines() or ["not understood"]
        reason = lines[-1].rsplit(": ", 1)[-1]  # FAISS prefixes its source location
        raise InputError(f"unknown index type {factory!r} for {dim}-d vectors (a FAISS factory string such as "
                         f"Flat, HNSW32 or IVF4096,PQ64x4fs): {reason}") from None
    if isinstance(index, faiss.IndexBinary) or not hasattr(index, "search"):
        raise InputError(f"index type {factory!r} is not a float vector index")
    return index


def ivf_lists(count: int) -> int:
    """Inverted lists for ``count`` vectors: a power of two near 4 sqrt(n), trainable on them."""
    wanted = 2 ** round(math.log2(max(4 * math.sqrt(max(count, 1)), 16)))
    trainable = 2 ** int(math.log2(max(count // POINTS_PER_CENTROID, 16)))
    return int(min(wanted, trainable, MAX_LISTS))


def pq_sizes(dim: int) -> list[int]:
    """Sub-quantiser counts for fast-scan PQ, richest first: one per 8, 16, 32 dimensions."""
    sizes = [dim // step for step in (8, 16, 32) if dim % step == 0 and dim // step >= 2]
    return sizes or [m for m in range(dim // 2, 0, -1) if dim % m == 0][:1]


def auto_factory(count: int, dim: int, budget: int | None) -> str:
    """What ``auto`` builds for ``count`` vectors within ``budget`` resident bytes."""
    budget = default_budget() if budget is None else budget
    if count <= AUTO_EXACT_MAX and resident_bytes("Flat", count, dim) <= budget:
        return "Flat"
    lists = ivf_lists(count)
    for m in pq_sizes(dim):
        candidate = f"IVF{lists},PQ{m}x4fs"
        if resident_bytes(candidate, count, dim) <= budget:
            return candidate
    smallest = f"IVF{lists},PQ{pq_sizes(dim)[-1]}x4fs"
    raise InputError(f"no index fits {count:,} vectors in an index memory budget of {_size(budget)}: the smallest, "
                     f"{smallest}, needs about {_size(resident_bytes(smallest, count, dim))}")


def effective_factory(setting: str, count: int, dim: int, budget: int | None) -> str:
    """The type to build now: ``auto``'s pick, or the named type once there are enough vectors
    to train it (exact search until then)."""
    if setting == AUTO:
        return auto_factory(count, dim, budget)
    chosen = "Flat" if count < vectors_to_train(setting, dim) else setting
    limit = default_budget() if budget is None else budget
    if resident_bytes(chosen, count, dim) > limit:
        raise InputError(f"index {chosen} needs about {_size(resident_bytes(chosen, count, dim))} for {count:,} "
                         f"vectors, over the index memory budget of {_size(limit)}"
                         + (" (a quarter of RAM: set --index-memory)" if budget is None else ""))
    return chosen


def family(factory: str) -> str:
    """What ``auto`` distinguishes when it decides whether to rebuild: exact or not."""
    return "exact" if factory == "Flat" else "approximate"


def _size(n: int) -> str:
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


# -- what an index is made of ----------------------------------------------------------------
def _unwrap(index: faiss.Index) -> faiss.Index:
    index = faiss.downcast_index(index)
    while isinstance(index, faiss.IndexPreTransform):
        index = faiss.downcast_index(index.index)
    return index


def ivf_of(index: faiss.Index):
    return faiss.try_extract_index_ivf(index)


def hnsw_of(index: faiss.Index):
    inner = _unwrap(index)
    return inner if isinstance(inner, faiss.IndexHNSW) else None


def is_lossless(index: faiss.Index) -> bool:
    """Whether the index scores with the float32 vectors themselves (no re-ranking needed)."""
    inner = faiss.downcast_index(index)  # a transform (PCA, OPQ) loses information too
    if isinstance(inner, faiss.IndexHNSW):
        inner = faiss.downcast_index(inner.storage)
    return type(inner) in (faiss.IndexFlatIP, faiss.IndexFlat, faiss.IndexIVFFlat)


@functools.lru_cache(maxsize=256)
def vectors_to_train(factory: str, dim: int) -> int:
    """Vectors a type needs before it can be trained well (0: it needs no training)."""
    index = make(factory, dim)
    if index.is_trained:
        return 0
    centroids = 1
    ivf = ivf_of(index)
    if ivf is not None:
        centroids = ivf.nlist
    pq = getattr(_unwrap(index), "pq", None)
    if pq is not None:
        centroids = max(centroids, 1 << pq.nbits)
    return centroids * POINTS_PER_CENTROID


def resident_bytes(factory: str, count: int, dim: int) -> int:
    """About what an index of ``count`` vectors keeps in memory once searched all over."""
    fixed, per_vector = _memory_shape(factory, dim)
    return fixed + per_vector * count


@functools.lru_cache(maxsize=256)
def _memory_shape(factory: str, dim: int) -> tuple[int, int]:
    """(bytes whatever the count, bytes per vector) of a type."""
    index = make(factory, dim)
    fixed, per_vector = 0, OWN_BYTES_PER_VECTOR
    ivf = ivf_of(index)
    hnsw = hnsw_of(index)
    if ivf is not None:
        fixed = ivf.nlist * dim * 4
        per_vector += ivf.code_size + 8  # codes and FAISS's own id per vector
    elif hnsw is not None:
        storage = faiss.downcast_index(hnsw.storage)
        # links: 2M on the ground level, a few more above it; plus offsets and levels
        per_vector += storage.sa_code_size() + int(hnsw.hnsw.nb_neighbors(0) * 4 * 1.1) + 12
    else:
        per_vector += index.sa_code_size()
    return fixed, per_vector


# -- search parameters -----------------------------------------------------------------------
def maps_from_disk(factory: str, dim: int) -> bool:
    """Whether FAISS memory-maps this type's bulk (``IO_FLAG_MMAP_IFC``); fast-scan codes it
    reads into memory, as its reader has no mapped form for them."""
    index = faiss.downcast_index(make(factory, dim))
    return not isinstance(index, (faiss.IndexIVFFastScan, faiss.IndexFastScan))


def knob_range(index: faiss.Index) -> tuple[str | None, list[int]]:
    """The setting that trades speed for recall (nprobe, efSearch) and the values worth trying."""
    ivf = ivf_of(index)
    if ivf is not None:
        values = [2 ** i for i in range(int(math.log2(ivf.nlist)) + 1)]
        return "nprobe", [v for v in values if v >= min(4, ivf.nlist)]
    if hnsw_of(index) is not None:
        return "efSearch", [16, 32, 64, 128, 256, 512]
    return None, [0]


def knob_limit(index: faiss.Index) -> int:
    """The largest useful value of the knob: every list, or a very wide graph search."""
    ivf = ivf_of(index)
    if ivf is not None:
        return ivf.nlist
    return 4096 if hnsw_of(index) is not None else 0


def search_parameters(index: faiss.Index, knob: int, selector, queries: int) -> faiss.SearchParameters:
    """Search parameters for this index's structure (FAISS's wrapper keeps the selector alive)."""
    if selector is None and queries < FEW_QUERIES and isinstance(faiss.downcast_index(index), faiss.IndexFlat):
        selector = faiss.IDSelectorAll()  # see FEW_QUERIES
    ivf = ivf_of(index)
    if ivf is not None:
        params = faiss.SearchParametersIVF(nprobe=int(min(knob or ivf.nprobe, ivf.nlist)), sel=selector)
        quantizer = faiss.downcast_index(ivf.quantizer)
        if isinstance(quantizer, faiss.IndexHNSW):  # a graph over the centroids must look wider than nprobe
            params.quantizer_params = faiss.SearchParametersHNSW(efSearch=max(2 * params.nprobe, 64))
        return params
    if hnsw_of(index) is not None:
        return faiss.SearchParametersHNSW(efSearch=int(knob or 64), sel=selector)
    return faiss.SearchParameters(sel=selector)
