"""What the server holds: the opened collections, their models, and whether they are ready.

Each model is loaded once (``load_encoder`` caches by spec) and shared by every collection
built with it, behind one ``ServingEncoder`` and so one batcher. Collections open at start-up,
so a wrong name fails before the server binds; the models load in a background thread, so
the server answers /healthz at once and /readyz when they are in.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Annotated, TypeVar

import numpy as np
from fastapi import Depends, HTTPException, Request

from ..errors import ClipforgeError, InputError, NotFoundError
from ..index.ann.background import BackgroundIndexer
from ..index.collection import KINDS, Collection
from ..search.queries import check_text
from .batching import ServingEncoder
from .deadline import check_deadline
from .files import ThumbnailCache
from .searching import BatchedSearch
from .settings import ServeSettings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Threads for blocking work: model calls, FAISS, SQLite, decoding. Most of them only wait on
# the batcher, so there are many more than cores: a batch can only be as large as the
# number of queries waiting for it.
_WORKERS = 64


class NotReady(HTTPException):
    def __init__(self, detail: str):
        super().__init__(503, detail, headers={"Retry-After": "1"})


@dataclass
class Served:
    name: str
    collection: Collection
    encoder: ServingEncoder | None = None
    # Collection reads rebuild a cached index when the collection changed; two threads must
    # not do that at once, so reads of one collection take turns (each is milliseconds).
    lock: threading.Lock = field(default_factory=threading.Lock)

    searcher: BatchedSearch | None = None  # searches that arrive together run as one

    def read(self, fn: Callable[[Collection], T]) -> T:
        """``fn(collection)``, in turn with every other read of this collection."""
        with self.lock:
            return fn(self.collection)

    def search(self, vector: np.ndarray, **page):
        """One page of hits for one query vector (blocking): ``Collection.search_vectors``,
        batched with the other searches of this collection that arrive with it."""
        return self.searcher.search(vector, **page)


def _warm_indexes(collection: Collection) -> None:
    """Build or load the indexes now rather than on the first query."""
    zeros = np.zeros((1, collection.dim), np.float32)
    for kind in KINDS:
        collection.search_vectors(zeros, k=1, target=kind)


class Service:
    def __init__(self, settings: ServeSettings, on_batch=None):
        if not settings.collections:
            raise InputError("nothing to serve: name at least one collection")
        self.settings = settings
        self.limits = settings.limits
        self.thumbnails = ThumbnailCache()
        self.served: dict[str, Served] = {}
        self._on_batch = on_batch
        self._ready = threading.Event()
        self.load_error: str | None = None
        self.indexer: BackgroundIndexer | None = None
        self.executor = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="clipforge-serve")
        try:
            for where in settings.collections:
                self._open(where)
        except BaseException:
            self.close()
            raise

    def _open(self, where: str) -> None:
        collection = Collection.open(where, device=self.settings.device, precision=self.settings.precision)
        if collection.name in self.served:
            collection.close()
            raise InputError(f"two collections are named {collection.name}; serve them from separate servers")
        served = Served(collection.name, collection)
        served.searcher = BatchedSearch(served.read, self.settings.batching, collection.name)
        self.served[collection.name] = served

    # -- lifecycle ---------------------------------------------------------------------
    def start(self) -> None:
        if self.settings.load_in_background:
            threading.Thread(target=self.load, name="clipforge-load", daemon=True).start()
        else:
            self.load()

    def load(self) -> None:
        """Load every model and warm every index; afterwards /readyz reports ready."""
        try:
            shared: dict[int, ServingEncoder] = {}
            for served in self.served.values():
                # Queries are encoded as a local search encodes them: by the collection's query
                # model where it keeps one (an export of its weights, no torch), so that a search
                # handed to this server answers what it would have answered alone.
                encoder = served.collection.query_encoder
                if id(encoder) not in shared:
                    shared[id(encoder)] = ServingEncoder(encoder, self.settings.batching, self._on_batch)
                served.encoder = shared[id(encoder)]
                served.read(_warm_indexes)
            self._maintain_indexes()
            self._ready.set()
        except ClipforgeError as e:
            self.load_error = str(e)
            log.error("cannot serve: %s", e)

    def _maintain_indexes(self) -> None:
        """From now on indexes are built, folded and rebuilt by a background thread; searches
        keep using the index they have until the new one is in place."""
        for served in self.served.values():
            served.collection.indexes.background = True
        targets = [(served.collection.path, served.read) for served in self.served.values()]
        self.indexer = BackgroundIndexer(targets, lambda path: Collection.open(path, check=False))
        self.indexer.start()

    @property
    def ready(self) -> bool:
        return self._ready.is_set()

    def wait_ready(self, timeout: float | None = None) -> bool:
        return self._ready.wait(timeout)

    def close(self) -> None:
        if self.indexer is not None:
            self.indexer.stop()
        for encoder in {id(s.encoder): s.encoder for s in self.served.values() if s.encoder}.values():
            encoder.close()
        for served in self.served.values():
            if served.searcher is not None:
                served.searcher.close()
            served.collection.close()
        self.executor.shutdown(wait=False, cancel_futures=True)

    # -- access ------------------------------------------------------------------------
    def get(self, name: str | None) -> Served:
        if name is None:
            return next(iter(self.served.values()))
        served = self.served.get(name)
        if served is None:
            raise NotFoundError(f"no collection named {name!r} is served (serving: {', '.join(self.served)})")
        return served

    def encoder(self, served: Served) -> ServingEncoder:
        if self.load_error:
            raise NotReady(f"the models could not be loaded: {self.load_error}")
        if not self.ready or served.encoder is None:
            raise NotReady("the models are still loading; retry shortly")
        return served.encoder

    async def run(self, fn, *args, **kwargs):
        """Run blocking work off the event loop, under the request's deadline."""
        loop = asyncio.get_running_loop()
        # run_in_executor does not carry contextvars over; the copy carries the deadline.
        context = contextvars.copy_context()
        return await loop.run_in_executor(self.executor, context.run, _within_deadline,
                                          functools.partial(fn, *args, **kwargs))


    # Text queries and searches go to their batchers straight from the event loop, without a
    # worker thread waiting on each: under load the hops between threads, each a wait for the
    # GIL, cost more than the work (at 100K captions, 34 ms of a 45 ms answer).
    async def query_vector(self, served: Served, encoder, *, text: str | None = None, image: bytes | None = None,
                           item_id: int | None = None, text_weight: float = 0.5) -> np.ndarray:
        """The request's query vector (``query_vector``)."""
        batcher = getattr(encoder, "batcher", None)
        if text is not None and image is None and item_id is None and batcher is not None:
            return await batcher.run_async(check_text(text))
        return await self.run(query_vector, served, encoder, self.limits, text=text, image=image, item_id=item_id,
                              text_weight=text_weight)

    async def search(self, served: Served, vector: np.ndarray, **page):
        """One page of hits for one query vector (``Served.search``)."""
        hits = await served.searcher.search_async(vector, **page)
        return hits if hits is not None else await self.run(served.search, vector, **page)


def _within_deadline(call: Callable[[], T]) -> T:
    check_deadline()  # work queued behind a busy pool may start after its request gave up
    return call()


def query_vector(served: Served, encoder, limits, *, text: str | None = None, image: bytes | None = None,
                 item_id: int | None = None, text_weight: float = 0.5) -> np.ndarray:
    """The collection's query vector, through the serving encoder (text goes through the batcher)
    and the server's pixel limit. Blocking: run it in a worker thread."""
    return served.collection.query_vector(text, image, item_id=item_id, text_weight=text_weight,
                                          encoder=encoder, max_pixels=limits.max_image_pixels)


async def get_service(request: Request) -> Service:
    # async: FastAPI runs a plain function dependency in a worker thread, one hop per request.
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]
