"""Helpers for the search index tests: a 64-d model (the index types need more than the tiny
model's 16 dimensions to mean anything), clustered vectors committed straight into a real
collection, and brute force to compare with."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from clipforge import Collection
from clipforge.index.ann import items
from clipforge.index.store import NewItem

DIM = 64
SHARDS = 10


def build_model(folder: Path) -> str:
    from clipforge.models.presets import make_dual_encoder

    model, tokenizer, processor = make_dual_encoder("tiny", projection_dim=DIM)
    for part in (model, tokenizer, processor):
        part.save_pretrained(folder)
    return f"hf:{folder}"


class Points:
    """Unit vectors around random centres, reproducible by seed."""

    def __init__(self, centres: int = 100, noise: float = 0.6, seed: int = 0):
        rng = np.random.default_rng(seed)
        self.centres = rng.standard_normal((centres, DIM)).astype(np.float32)
        self.centres /= np.linalg.norm(self.centres, axis=1, keepdims=True)
        self.noise = noise

    def sample(self, n: int, seed: int) -> np.ndarray:
        rng = np.random.default_rng(seed)
        x = self.centres[rng.integers(0, len(self.centres), n)]
        x = x + self.noise * rng.standard_normal((n, DIM)) / np.sqrt(DIM)
        return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def add(coll: Collection, vectors: np.ndarray, prefix: str, kind: str = "text", start: int = 0) -> list[int]:
    """Commit one item per vector (keys ``prefix{start}``, ``prefix{start + 1}``...); their
    ids, in order. An existing key is updated: it gets the new vector."""
    keys = [f"{prefix}{start + i}" for i in range(len(vectors))]
    with coll.writing():
        first = coll.append_vectors(vectors)
        coll.commit([NewItem(kind=kind, key=key, text=key if kind == "text" else None, vector_row=first + i,
                             metadata={"shard": i % SHARDS}) for i, key in enumerate(keys)])
    found = coll.store.items_by_key(keys)
    return [found[key].id for key in keys]


def remove(coll: Collection, ids) -> None:
    with coll.writing():
        coll.commit(removed=[int(i) for i in ids])


def brute_force(coll: Collection, queries: np.ndarray, k: int, allowed=None, kind: str = "text"):
    """(scores, ids) of the exact top k over the live items' stored vectors."""
    ids, rows = items.live(coll.store, kind)
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, rows = ids[keep], rows[keep]
    scores = queries @ coll.read_vectors(rows).T
    order = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return np.take_along_axis(scores, order, 1), ids[order]


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f[f >= 0]) & set(t)) / len(t) for f, t in zip(found, truth)]))
