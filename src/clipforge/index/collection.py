"""A collection: one directory holding items, their vectors and a derived search index.

```
from clipforge import Collection
pics = Collection.open_or_create("pics", model="hf:openai/clip-vit-base-patch32")
pics.add_images(["~/Pictures"])
hits = pics.search("a dog on a beach", k=10)
```

Layout: ``collection.sqlite`` (the source of truth), ``vectors/`` (float16 segments) and
``index/`` (FAISS files, derived and disposable). A collection records the model spec and
dimension it was built with and refuses any other model, and the fingerprint of that model's
weights, so that a model retrained or updated under the same spec is refused too.
"""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ClipforgeError, CollectionError, InputError, ModelMismatchError, NotFoundError
from ..models.fingerprint import model_fingerprint
from ..models.spec import parse_spec
from ..paths import resolve_collection_path
from .ann import IndexCache, build_index, search_index
from .store import SCHEMA_VERSION, Store
from .vectors import VectorSegments

DB_NAME = "collection.sqlite"
KINDS = ("image", "text")


@dataclass
class Hit:
    id: int
    score: float
    kind: str
    path: str | None
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Collection:
    def __init__(self, path: Path, store: Store, device: str = "auto", precision: str = "auto"):
        self.path = path
        self.store = store
        self.model_spec = store.get_meta("model_spec") or ""
        self.dim = int(store.get_meta("dim", "0"))
        self.device, self.precision = device, precision
        self.vectors = VectorSegments(path / "vectors", self.dim, self._committed_rows())
        self._indexes: dict[str, tuple[int, Any]] = {}
        self._encoder = None

    # -- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, where: str | os.PathLike, model: str, *, device: str = "auto", precision: str = "auto") -> "Collection":
        from ..models import load_encoder

        path = resolve_collection_path(where)
        if (path / DB_NAME).exists():
            raise InputError(f"collection {where} already exists at {path}")
        encoder = load_encoder(model, device=device, precision=precision)
        fingerprint = model_fingerprint(encoder.spec)
        path.mkdir(parents=True, exist_ok=True)
        store = Store(path / DB_NAME)
        with store.transaction() as db:
            for key, value in {
                "schema_version": SCHEMA_VERSION, "model_spec": encoder.spec, "dim": encoder.dim,
                "vector_rows": 0, "generation": 0, "created_at": time.time(),
                **({"model_fingerprint": fingerprint} if fingerprint else {}),
            }.items():
                store.set_meta(key, value, db)
        collection = cls(path, store, device, precision)
        collection._encoder = encoder
        return collection

    @classmethod
    def open(cls, where: str | os.PathLike, model: str | None = None, *, device: str = "auto", precision: str = "auto") -> "Collection":
        """Open an existing collection; with ``model``, refuse it unless it is the one used to build it."""
        path = resolve_collection_path(where)
        if not (path / DB_NAME).exists():
            hint = "" if path.exists() and any(path.iterdir()) else "; create it with `clipforge index DIR -c NAME --model SPEC`"
            raise NotFoundError(f"no collection '{where}' (looked for {path / DB_NAME}){hint}")
        store = Store(path / DB_NAME)
        version = store.get_meta("schema_version")
        if version != str(SCHEMA_VERSION):
            store.close()
            raise CollectionError(f"{path}: unknown collection schema version {version!r} (this clipforge reads {SCHEMA_VERSION})")
        collection = cls(path, store, device, precision)
        if model is not None:
            collection.check_model(model)
        return collection

    @classmethod
    def open_or_create(cls, where: str | os.PathLike, model: str | None = None, **kwargs) -> "Collection":
        if (resolve_collection_path(where) / DB_NAME).exists():
            return cls.open(where, model, **kwargs)
        if model is None:
            raise InputError(f"collection '{where}' does not exist yet: pass a model (--model SPEC) to create it")
        return cls.create(where, model, **kwargs)

    def check_model(self, model: str) -> None:
        wanted = str(parse_spec(model))
        if wanted != self.model_spec:
            raise ModelMismatchError(
                f"collection {self.name} was built with {self.model_spec}, not {wanted}; "
                f"vectors from different models are not comparable (use another collection)"
            )

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def encoder(self):
        """The collection's own model, loaded on first use."""
        if self._encoder is None:
            from ..models import load_encoder

            if self.model_changed():
                raise ModelMismatchError(
                    f"the weights of {self.model_spec} have changed since collection {self.name} was built, so its "
                    f"vectors no longer match new queries; rebuild it (remove {self.path} and index again)"
                )
            encoder = load_encoder(self.model_spec, device=self.device, precision=self.precision)
            if encoder.dim != self.dim:
                raise ModelMismatchError(
                    f"{self.model_spec} now gives {encoder.dim}-d vectors but collection {self.name} holds {self.dim}-d ones"
                )
            self._encoder = encoder
        return self._encoder

    def model_changed(self) -> bool:
        """Whether the model's weights differ from those the collection was built with (False
        where either fingerprint is unknown: a collection from before fingerprints, or a hub
        model not in the local cache)."""
        stored = self.store.get_meta("model_fingerprint")
        if not stored:
            return False
        current = model_fingerprint(parse_spec(self.model_spec))
        return current is not None and current != stored

    def close(self) -> None:
        self.store.close()

    def __enter__(self) -> "Collection":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    # -- writing -------------------------------------------------------------------------
    def _committed_rows(self) -> int:
        return int(self.store.get_meta("vector_rows", "0"))

    @contextmanager
    def writing(self):
        """Hold the collection's write lock; cut off vectors a killed writer left behind."""
        lock = open(self.path / ".write.lock", "w")
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            lock.close()
            raise CollectionError(f"collection {self.name} is being written by another process") from None
        try:
            self.vectors.discard_uncommitted(self._committed_rows())
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
            lock.close()

    def append_vectors(self, vectors: np.ndarray) -> int:
        """Append vectors (inside ``writing``); commit ``vector_rows`` with the items using them."""
        return self.vectors.append(vectors)

    def add_images(self, sources: Iterable[str | os.PathLike], *, batch_size: int = 64, workers: int | None = None,
                   max_pixels: int | None = None, on_progress: Callable[[int, int], None] | None = None):
        """Index image files and folders incrementally. Returns an ``IndexReport``."""
        from .ingest import IngestOptions, index_images

        options = IngestOptions(batch_size=batch_size, workers=workers, on_progress=on_progress)
        if max_pixels is not None:
            options.max_pixels = max_pixels
        return index_images(self, [Path(s) for s in sources], options)

    def add_texts(self, texts: Sequence[str], *, ids: Sequence[str] | None = None,
                  metadata: Sequence[dict] | None = None, batch_size: int = 256,
                  on_progress: Callable[[int, int], None] | None = None):
        """Add texts (captions, descriptions) for image-to-text search. Re-adding is a no-op."""
        from .ingest import index_texts

        return index_texts(self, texts, ids=ids, metadata=metadata, batch_size=batch_size, on_progress=on_progress)

    # -- reading -------------------------------------------------------------------------
    def _index(self, kind: str):
        generation = self.store.generation
        cached = self._indexes.get(kind)
        if cached and cached[0] == generation:
            return cached[1]
        disk = IndexCache(self.path / "index")
        index = disk.load(kind, generation)
        if index is None:
            ids, rows = self.store.live_vector_rows(kind)
            self.vectors.rows = self._committed_rows()
            index = build_index(self.vectors.read(rows), np.asarray(ids, dtype=np.int64))
            disk.save(kind, generation, index)
        self._indexes[kind] = (generation, index)
        return index

    def search_vectors(self, queries: np.ndarray, *, k: int = 10, target: str = "image",
                       min_score: float | None = None) -> list[list[Hit]]:
        """Nearest items of kind ``target`` for each query vector."""
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive whole number, got {k}")
        if target not in KINDS:
            raise InputError(f"search target must be one of {', '.join(KINDS)}, got {target!r}")
        queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
        if queries.shape[1] != self.dim:
            raise ModelMismatchError(f"query vectors are {queries.shape[1]}-d; collection {self.name} holds {self.dim}-d")
        scores, ids = search_index(self._index(target), queries, int(k))
        items = self.store.get_items({int(i) for i in ids.ravel() if i >= 0})
        results = []
        for row_scores, row_ids in zip(scores, ids):
            hits = []
            for score, item_id in zip(row_scores, row_ids):
                item = items.get(int(item_id))
                if item is None or (min_score is not None and score < min_score):
                    continue
                hits.append(Hit(item.id, float(score), item.kind, item.path, item.text, item.metadata))
            results.append(hits)
        return results

    def search(self, text: str | None = None, image=None, *, k: int = 10, target: str = "image",
               text_weight: float = 0.5, min_score: float | None = None) -> list[Hit]:
        """Search by text, by image (a path, bytes or PIL image), or by both (composed)."""
        from ..search.queries import build_query

        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
            raise InputError(f"k must be a positive whole number, got {k}")
        query = build_query(self.encoder, text=text, image=image, text_weight=text_weight)
        return self.search_vectors(query[None], k=k, target=target, min_score=min_score)[0]

    def get(self, item_id: int):
        item = self.store.get_items([item_id]).get(item_id)
        if item is None:
            raise NotFoundError(f"collection {self.name} has no item {item_id}")
        return item

    def vectors_for_paths(self, paths: Iterable[str | os.PathLike]) -> dict[str, np.ndarray]:
        """Stored image vectors keyed by absolute path; paths not in the collection are absent."""
        keys = [str(Path(p).expanduser().resolve()) for p in paths]
        items = {k: i for k, i in self.store.items_by_key(keys).items() if i.kind == "image" and not i.removed}
        self.vectors.rows = self._committed_rows()
        vectors = self.vectors.read([i.vector_row for i in items.values()])
        return dict(zip(items.keys(), vectors))

    def vectors_for_ids(self, ids: Sequence[int]) -> np.ndarray:
        """Stored vectors of live items, in the order given ("more like this" needs no model)."""
        ids = [int(i) for i in ids]
        items = self.store.get_items(ids)
        rows = []
        for item_id in ids:
            item = items.get(item_id)
            if item is None or item.removed:
                raise NotFoundError(f"collection {self.name} has no item {item_id}")
            rows.append(item.vector_row)
        self.vectors.rows = self._committed_rows()
        return self.vectors.read(rows)

    def _model_changed_or_unknown(self) -> bool | None:
        # info must work even when the model is gone (a deleted run directory): None, unknown.
        try:
            return self.model_changed()
        except ClipforgeError:
            return None

    def info(self, skipped_limit: int | None = 100) -> dict[str, Any]:
        counts = self.store.counts()
        size = sum(f.stat().st_size for f in self.path.rglob("*") if f.is_file())
        return {
            "name": self.name,
            "path": str(self.path),
            "model": self.model_spec,
            "dim": self.dim,
            "model_fingerprint": self.store.get_meta("model_fingerprint"),
            "model_changed": self._model_changed_or_unknown(),
            **counts,
            "vector_rows": self._committed_rows(),
            "disk_bytes": size,
            "skipped_files": self.store.list_skipped(skipped_limit),
        }
