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

import logging
import os
from collections.abc import Callable, Iterable, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from ..discovery import database_identity
from ..errors import ClipforgeError, CollectionError, InputError, ModelMismatchError, NotFoundError
from ..models.fingerprint import model_fingerprint
from ..models.spec import parse_spec
from . import health, opening
from . import query as query_
from .ann import KINDS as INDEXED_KINDS
from .ann import IndexSettings, Indexes, Job, SearchIndex
from .lock import write_lock
from .query import KINDS, Hit, Page, Results, Where  # KINDS and Hit: re-exported
from .store import NewItem, Store
from .subsets import SubsetCache
from .vectors import VectorSegments

QUERY_MODEL = "query_model"  # meta key: the model that encodes queries, when not the collection's own
log = logging.getLogger(__name__)


class Collection:
    def __init__(self, path: Path, store: Store, device: str = "auto", precision: str = "auto"):
        self.path = path
        self.store = store
        self.model_spec = store.get_meta("model_spec") or ""
        self.dim = int(store.get_meta("dim", "0"))
        self.device, self.precision = device, precision
        self.vectors = VectorSegments(path / "vectors", self.dim, self.committed_rows())
        self.indexes = Indexes(self)  # per kind: a main index (FAISS) and an exact fresh part
        self.subsets = SubsetCache()  # what recent filters kept, until the next commit
        self._encoder = None
        self._query_encoder = None
        self.runtime_spec: str | None = None  # another model with comparable vectors, run instead (use_model)
        self._where = path.name  # how the user named it, for the commands an error suggests
        self.created: opening.Created | None = None  # what create() made, when this object made it
        self._identity = database_identity(path)

    # -- opening (index.opening) -----------------------------------------------------------
    @classmethod
    def create(cls, where: str | os.PathLike, model: str, *, device: str = "auto", precision: str = "auto",
               index: str = "auto", index_memory: str | int | None = None) -> "Collection":
        """A new collection. ``index`` is ``auto`` or a FAISS factory string ("HNSW32",
        "IVF4096,PQ64x4fs"); ``index_memory`` ("4GB") bounds what ``auto`` may choose."""
        return opening.create(cls, where, model, device=device, precision=precision, index=index,
                              index_memory=index_memory)

    @classmethod
    def open(cls, where: str | os.PathLike, model: str | None = None, *, device: str = "auto", precision: str = "auto",
             check: bool = True) -> "Collection":
        """Open an existing collection; with ``model``, run it with that model, refused unless
        its vectors are comparable with the collection's (see ``use_model``).

        A damaged collection (vectors missing) is refused with what is wrong, unless ``check``
        is False: ``info`` and ``repair`` open it to say what is wrong and to mend it.
        """
        return opening.open_existing(cls, where, model, device=device, precision=precision, check=check)

    @classmethod
    def open_or_create(cls, where: str | os.PathLike, model: str | None = None, *, index: str | None = None,
                       index_memory: str | int | None = None, **kwargs) -> "Collection":
        """Open a collection, or create it; index settings given are kept for later writes and searches."""
        return opening.open_or_create(cls, where, model, index=index, index_memory=index_memory, **kwargs)

    def use_model(self, model: str) -> None:
        """Encode with ``model``: the collection's own, or another whose vectors are comparable
        (an ONNX export of the same weights, see ``models.comparable``); refuse any other."""
        from ..models.comparable import comparable

        wanted = str(parse_spec(model))
        if wanted == self.model_spec:
            return
        if not comparable(self.model_spec, self.store.get_meta("model_fingerprint"), wanted):
            raise ModelMismatchError(
                f"collection {self.name} was built with {self.model_spec}, not {wanted}; vectors from "
                f"different models are not comparable (use another collection)"
            )
        if self.runtime_spec != wanted:
            self.runtime_spec, self._encoder = wanted, None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def encoder(self):
        """The collection's own model, loaded on first use."""
        if self._encoder is None:
            from ..models import load_encoder

            if self.runtime_spec is None and self.model_changed():  # use_model checked a runtime's weights
                raise ModelMismatchError(
                    f"the weights of {self.model_spec} have changed since collection {self.name} was built, so its "
                    f"vectors no longer match new queries; rebuild it (remove {self.path} and index again)"
                )
            encoder = load_encoder(self.runtime_spec or self.model_spec, device=self.device, precision=self.precision)
            if encoder.dim != self.dim:
                raise ModelMismatchError(
                    f"{encoder.spec} now gives {encoder.dim}-d vectors but collection {self.name} holds {self.dim}-d ones"
                )
            self._encoder = encoder
        return self._encoder

    @property
    def query_encoder(self):
        """The model that encodes queries: the collection's own, or the query model it keeps
        (``set_query_model``) unless this object was opened with a model of its own. A kept
        query model that cannot be used (gone, no longer comparable) gives way to the own
        model, with a warning."""
        from ..models import load_encoder
        from ..models.comparable import comparable

        spec = self.store.get_meta(QUERY_MODEL) or None
        if spec is None or self.runtime_spec is not None:
            return self.encoder
        if self._query_encoder is None or str(self._query_encoder.spec) != spec:
            try:
                if not comparable(self.model_spec, self.store.get_meta("model_fingerprint"), spec):
                    raise ModelMismatchError(f"its vectors are no longer comparable with {self.model_spec}'s")
                encoder = load_encoder(spec, device=self.device, precision=self.precision)
                if encoder.dim != self.dim:
                    raise ModelMismatchError(f"it gives {encoder.dim}-d vectors, not {self.dim}-d")
            except ClipforgeError as e:
                log.warning("collection %s: its query model %s cannot be used (%s); queries use %s",
                            self.name, spec, str(e).splitlines()[0], self.model_spec)
                return self.encoder
            self._query_encoder = encoder
        return self._query_encoder

    def set_query_model(self, spec: str | None) -> None:
        """Encode queries with ``spec`` from now on, in every command that names no model: a
        model whose vectors are comparable with the collection's (an ONNX export of its
        weights, which answers without torch). None or "own": the collection's own model."""
        from ..models.comparable import comparable

        wanted = None if spec in (None, "own") else str(parse_spec(spec))
        if wanted == self.model_spec:
            wanted = None
        if wanted is not None and not comparable(self.model_spec, self.store.get_meta("model_fingerprint"), wanted):
            raise ModelMismatchError(f"{wanted} cannot encode the queries of collection {self.name}: its vectors are "
                                     f"not comparable with {self.model_spec}'s")
        if wanted != (self.store.get_meta(QUERY_MODEL) or None):
            with self.writing(), self.store.transaction() as db:
                self.store.bump_generation(db)  # so that other processes see the change
                self.store.set_meta(QUERY_MODEL, wanted or "", db)

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
    def committed_rows(self) -> int:
        return int(self.store.get_meta("vector_rows", "0"))

    @contextmanager
    def writing(self):
        """Hold the collection's write lock; cut off vectors a killed writer left behind."""
        self._check_still_here()  # before the lock too: a removed folder has no lock file
        with write_lock(self.path, self.name):
            self._check_still_here()
            with self._diagnosed():
                self.vectors.discard_uncommitted(self.committed_rows())
            yield

    def _check_still_here(self) -> None:
        if database_identity(self.path) != self._identity:
            raise CollectionError(f"collection {self.name} was removed or replaced by another process since it "
                                  f"was opened; nothing was written: run the command again")

    @contextmanager
    def _diagnosed(self):
        """Vectors found missing mid-way (deleted behind the collection's back) get the full diagnosis."""
        try:
            yield
        except CollectionError:
            found = health.quick_problems(self)
            if not found:
                raise
            raise health.damaged(self.name, self._where, found) from None

    def read_vectors(self, rows, normalized: bool = True) -> np.ndarray:
        """Stored vectors (unit-length float32) of the given committed rows; with
        ``normalized=False``, float16 exactly as stored."""
        self.vectors.rows = self.committed_rows()
        with self._diagnosed():
            return self.vectors.read(rows, normalized)

    def append_vectors(self, vectors: np.ndarray) -> int:
        """Append vectors (inside ``writing``) and return the first new row; they count once
        ``commit`` records the items that use them."""
        return self.vectors.append(vectors)

    def commit(self, items: Sequence[NewItem] = (), *, removed: Iterable[int] = (), revived: Iterable[int] = (),
               deleted: Iterable[int] = (), skipped: Iterable[tuple[str, int | None, int | None, str]] = (),
               forget_skipped: Iterable[str] = (), marks: dict[str, str] | None = None) -> int:
        """Record one batch of changes in one transaction (inside ``writing``), the only way a
        collection changes: items added or updated (their vectors appended before), items
        removed, revived or deleted, files skipped or no longer skipped, and ``marks``: settings
        that say a source (a shard, an imported file) was ingested whole, as it stood then. The
        vectors appended so far become committed, and the batch is stamped with a new
        generation, returned."""
        store = self.store
        with store.transaction() as db:
            generation = store.bump_generation(db)
            store.upsert_items(db, items, generation)
            store.set_removed(db, removed, True, generation)
            store.set_removed(db, revived, False, generation)
            store.delete_items(db, deleted)
            store.record_skipped(db, skipped)
            store.forget_skipped(db, forget_skipped)
            for key, value in (marks or {}).items():
                store.set_meta(key, value, db)
            store.set_meta("vector_rows", self.vectors.rows, db)
        return generation

    def add_images(self, sources: Iterable[str | os.PathLike], *, batch_size: int = 64, workers: int | None = None,
                   max_pixels: int | None = None, max_bytes: int | None = None,
                   on_progress: Callable[[int, int], None] | None = None, index: str | None = None,
                   index_memory: str | int | None = None, update_index: bool = True):
        """Index image files and folders incrementally. Returns an ``IndexReport``.

        Files over ``max_bytes`` or images over ``max_pixels`` are skipped with their reason.
        ``index``/``index_memory`` change the index settings (see ``create``); the search
        index is brought up to date at the end unless ``update_index`` is False.
        """
        from .ingest import IngestOptions, index_images

        options = IngestOptions(batch_size=batch_size, workers=workers, on_progress=on_progress)
        if max_pixels is not None:
            options.max_pixels = max_pixels
        if max_bytes is not None:
            options.max_bytes = max_bytes
        self.set_index(index, index_memory)
        report = index_images(self, [Path(s) for s in sources], options)
        if update_index:
            self.update_index()
        return report

    def add_texts(self, texts: Sequence[str], *, ids: Sequence[str] | None = None,
                  metadata: Sequence[dict] | None = None, batch_size: int = 256,
                  on_progress: Callable[[int, int], None] | None = None, index: str | None = None,
                  index_memory: str | int | None = None, update_index: bool = True):
        """Add texts (captions, descriptions) for image-to-text search. Re-adding is a no-op.
        ``index``, ``index_memory`` and ``update_index`` as for ``add_images``."""
        from .ingest import index_texts

        self.set_index(index, index_memory)
        report = index_texts(self, texts, ids=ids, metadata=metadata, batch_size=batch_size, on_progress=on_progress)
        if update_index:
            self.update_index()
        return report

    def add_table(self, table: str | os.PathLike, *, image_column: str = "image", meta_columns: Sequence[str] | None = None,
                  url_timeout_s: float | None = None, url_max_bytes: int | None = None, retry_skipped: bool = False,
                  batch_size: int = 64, workers: int | None = None, max_pixels: int | None = None,
                  max_bytes: int | None = None, on_progress: Callable[[int, int], None] | None = None):
        """Index the images a CSV/TSV/Parquet table names (paths or URLs), its other columns (or
        ``meta_columns``) as metadata; incremental (``index.tables``). Returns an ``IndexReport``."""
        from .tables import TableSpec, index_table

        limits = {k: v for k, v in (("url_timeout_s", url_timeout_s), ("url_max_bytes", url_max_bytes)) if v is not None}
        spec = TableSpec.checked(path=table, image_column=image_column, retry_skipped=retry_skipped,
                                 meta_columns=None if meta_columns is None else tuple(meta_columns), **limits)
        return index_table(self, spec, self._ingest_options(batch_size, workers, max_pixels, max_bytes, on_progress))

    def add_shards(self, shards: Sequence[str], *, retry_skipped: bool = False, batch_size: int = 64,
                   workers: int | None = None, max_pixels: int | None = None, max_bytes: int | None = None,
                   on_progress: Callable[[int, int], None] | None = None):
        """Index the images inside WebDataset tar shards (paths or brace patterns), their .txt and
        .json as metadata; incremental by shard (``index.shard_ingest``). Returns an ``IndexReport``."""
        from .shard_ingest import index_shards

        options = self._ingest_options(batch_size, workers, max_pixels, max_bytes, on_progress)
        return index_shards(self, [os.fspath(s) for s in shards], options, retry_skipped)

    def _ingest_options(self, batch_size, workers, max_pixels, max_bytes, on_progress):
        from .ingest import IngestOptions

        if batch_size < 1:
            raise InputError(f"batch size must be at least 1, got {batch_size}")
        options = IngestOptions(batch_size=batch_size, workers=workers, on_progress=on_progress)
        if max_pixels is not None:
            options.max_pixels = max_pixels
        if max_bytes is not None:
            options.max_bytes = max_bytes
        return options

    def import_embeddings(self, folder: str | os.PathLike, **options):
        """Add embeddings in clip-retrieval's layout (img_emb/, text_emb/, metadata/), checked first
        and imported incrementally (``index.exchange``). Returns an ``ImportReport``."""
        from .exchange import import_embeddings

        return import_embeddings(self, folder, **options)

    def export_embeddings(self, out: str | os.PathLike, **options):
        """Write the live items' vectors and metadata in clip-retrieval's layout, for clip-retrieval
        and autofaiss (``index.exchange``). Returns an ``ExportReport``."""
        from .exchange import export_embeddings

        return export_embeddings(self, out, **options)

    # -- reading -------------------------------------------------------------------------
    def search_index(self, kind: str) -> SearchIndex:
        """The search index of one kind of item, current with the collection's last commit."""
        return self.indexes.current(kind)

    def set_index(self, index: str | None = None, memory: str | int | None = None) -> IndexSettings:
        """Change the index type (``auto`` or a FAISS factory string) and memory budget; None
        keeps what is set. Later writes and searches use them; the index is rebuilt when due."""
        current = self.indexes.settings
        wanted = IndexSettings.checked(index, memory, self.dim, current)
        if wanted != current:
            with self.writing(), self.store.transaction() as db:
                self.store.bump_generation(db)  # so that other processes see the change
                for key, value in wanted.to_meta().items():
                    self.store.set_meta(key, value, db)
        return wanted

    def update_index(self, kinds: Iterable[str] = INDEXED_KINDS, *, force: bool = False,
                     on_start: Callable[[Job], None] | None = None,
                     on_progress: Callable[[int, int], None] | None = None) -> list[Job]:
        """Build, fold or rebuild the search indexes where due (every kind, with ``force``);
        returns what was done. Writes call it at their end; a search does what a write left."""
        return self.indexes.update(kinds, force=force, on_start=on_start, on_progress=on_progress)

    def search_vectors(self, queries: np.ndarray, *, k: int = 10, offset: int = 0, target: str = "image",
                       min_score: float | None = None, where: Where = None,
                       exclude: Iterable[int] = ()) -> list[Results]:
        """One page of the items of kind ``target`` nearest each query vector.

        ``where`` filters on metadata before ranking (``index.where``: ``"taken>=2023-06-01"``,
        a list of such, or a dict of equalities); ``exclude`` drops items by id; ``offset``
        skips that many hits; each result list has ``has_more``.
        """
        page = Page(k=k, offset=offset, target=target, min_score=min_score, where=where, exclude=tuple(exclude))
        return query_.search(self, queries, page)

    def query_vector(self, text: str | None = None, image=None, *, item_id: int | None = None,
                     text_weight: float = 0.5, encoder=None, max_pixels: int | None = None) -> np.ndarray:
        """One unit query vector: a text, an image (a path, bytes or PIL image), both, or a
        stored item ("more like this", no model needed), with an instruction if ``text``.
        ``encoder`` stands in for the collection's own model (a server's batching one)."""
        from ..search.queries import build_query, check_image_path, load_query_image

        if isinstance(image, (str, os.PathLike)):
            check_image_path(image)  # before the model loads
        if item_id is not None:
            if image is not None:
                raise InputError("give an image or an item id to search with, not both")
            if text is None:
                return self.vectors_for_ids([item_id])[0]
            image, _ = self.item_file(item_id)
        encoder = encoder or self.query_encoder
        if image is not None and max_pixels is not None:
            image = load_query_image(image, encoder.preprocess.draft_size, max_pixels=max_pixels)
        return build_query(encoder, text=text, image=image, text_weight=text_weight)

    def search(self, text: str | None = None, image=None, *, item_id: int | None = None, k: int = 10,
               offset: int = 0, target: str = "image", text_weight: float = 0.5, min_score: float | None = None,
               where: Where = None, exclude: Iterable[int] = ()) -> Results:
        """Search by text, by image (a path, bytes or PIL image), by both (composed), or by an
        item of the collection ("more like this", which leaves the item itself out)."""
        Page(k=k, offset=offset, target=target, min_score=min_score, where=where).check()  # before the model loads
        vector = self.query_vector(text, image, item_id=item_id, text_weight=text_weight)
        exclude = [*exclude, *([item_id] if item_id is not None else [])]
        return self.search_vectors(vector[None], k=k, offset=offset, target=target, min_score=min_score,
                                   where=where, exclude=exclude)[0]

    def item_file(self, item_id: int) -> tuple[bytes, int]:
        """(bytes, mtime_ns) of a live image item's file, while it still is what was indexed."""
        from .item_files import read_item_file

        return read_item_file(self, item_id)

    def get(self, item_id: int):
        item = self.store.get_items([item_id]).get(item_id)
        if item is None:
            raise NotFoundError(f"collection {self.name} has no item {item_id}")
        return item

    def vectors_for_paths(self, paths: Iterable[str | os.PathLike]) -> dict[str, np.ndarray]:
        """Stored image vectors keyed by absolute path; paths not in the collection are absent."""
        keys = [str(Path(p).expanduser().resolve()) for p in paths]
        items = {k: i for k, i in self.store.items_by_key(keys).items() if i.kind == "image" and not i.removed}
        vectors = self.read_vectors([i.vector_row for i in items.values()])
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
        return self.read_vectors(rows)

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
            "query_model": self.store.get_meta(QUERY_MODEL) or None,
            **counts,
            "vector_rows": self.committed_rows(),
            "disk_bytes": size,
            "skipped_files": self.store.list_skipped(skipped_limit),
            "metadata_keys": self.store.metadata_keys(),  # what filters can use, and how many items hold it
            "problems": health.problems(self),
            "index": self.indexes.describe(),
        }

    def repair(self, on_progress: Callable[[int, int], None] | None = None) -> health.RepairReport:
        """Rebuild what can be rebuilt of a damaged collection (see ``index.health``)."""
        return health.repair(self, on_progress)
