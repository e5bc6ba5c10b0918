"""A collection's search indexes, one per item kind: loaded from disk, kept current with the
collection's commits, and maintained (built, folded, rebuilt) when the policy says so.

Maintenance runs where it is cheapest to wait for: at the end of a write (``update``), in
a background thread of a server (``background = True``: searches never build then, except
when no index exists for a large kind), or inline in the next search otherwise (a write
killed before it finished, or one that did not maintain). Builders take the collection's
index-build lock, never its write lock, so writes go on during a long rebuild.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable

from ...errors import ClipforgeError
from . import files, items
from .build import build, fold
from .factory import maps_from_disk
from .main import MainIndex
from .policy import FOLD_AT, Job, plan
from .searcher import SearchIndex
from .settings import IndexSettings

log = logging.getLogger(__name__)

KINDS = ("image", "text")
RETRY_SECONDS = 30.0
WAIT_FOR_BUILDER = 24 * 3600.0  # a search with no index to use waits for the builder that is making one


class Indexes:
    def __init__(self, collection):
        self.collection = collection
        self.directory = collection.path / "index"
        self.background = False
        self._by_kind: dict[str, SearchIndex] = {}
        self._settings: tuple[int, IndexSettings] | None = None
        self._quiet_until = 0.0  # no inline maintenance before then

    # -- settings ------------------------------------------------------------------------
    @property
    def settings(self) -> IndexSettings:
        generation = self.collection.store.generation  # settings change with a new generation
        if self._settings is None or self._settings[0] != generation:
            self._settings = (generation, IndexSettings.from_meta(self.collection.store.all_meta()))
        return self._settings[1]

    # -- searching -----------------------------------------------------------------------
    def current(self, kind: str) -> SearchIndex:
        """The search index of ``kind``, current with the collection's last commit."""
        store = self.collection.store
        generation = store.generation
        searcher = self._searcher(kind)
        if searcher.main is None and searcher.seen < generation and (
                items.count_changed(store, kind, searcher.seen) + len(searcher.fresh) > FOLD_AT):
            searcher = self._make_main(kind)  # too many items to search exactly from memory
        searcher.catch_up(store, generation)
        if self.background or self._read_only or time.monotonic() < self._quiet_until:
            return searcher
        try:
            job = self._plan(searcher)
            if job is not None:
                if self.update([kind]):
                    searcher = self._searcher(kind)
                    searcher.catch_up(store, store.generation)
                else:  # another builder is at it: do not ask again at every search
                    self._quiet_until = time.monotonic() + RETRY_SECONDS
        except (ClipforgeError, OSError) as e:
            # A budget the collection has outgrown, a full disk: the search itself is sound
            # (what the index lacks, the fresh part has), so it goes on; the write that
            # maintains the index next reports the error.
            log.warning("the index of %s is not maintained: %s", self.collection.name, e)
            self._quiet_until = time.monotonic() + RETRY_SECONDS
        return searcher

    def _plan(self, searcher: SearchIndex) -> Job | None:
        main = searcher.main
        stale = main.manifest.positions - main.live_count if main else 0
        return plan(searcher.kind, main and main.manifest, self.settings, searcher.live_count, searcher.changed,
                    stale, self.collection.dim)

    def due_in_memory(self, kinds: Iterable[str] = KINDS) -> list[Job]:
        """What is due, judged from the indexes this handle has loaded (no counting)."""
        return [job for kind in kinds if (job := self._plan(self.current(kind))) is not None]

    def _searcher(self, kind: str) -> SearchIndex:
        """The loaded search index of ``kind``, reloaded when a builder replaced its files."""
        searcher = self._by_kind.get(kind)
        signature = files.manifest_signature(self.directory, kind)
        if searcher is None or (searcher.signature != signature and not searcher.in_memory):
            searcher = self._load(kind)
        return searcher

    def _make_main(self, kind: str) -> SearchIndex:
        """Build a main index now, or wait for the builder making one; in memory only when
        the collection is read-only."""
        if self._read_only:
            built = build(self.collection, kind, self.settings)
            main = MainIndex(built.manifest, built.index, built.ids, built.rows, self.collection.read_vectors)
            self._by_kind[kind] = SearchIndex(kind, self.collection.dim, main, self.collection.read_vectors)
            self._by_kind[kind].in_memory = True  # kept, whatever appears on disk
            return self._by_kind[kind]
        self.update([kind], wait=WAIT_FOR_BUILDER)
        return self._load(kind)

    @property
    def _read_only(self) -> bool:
        """Whether the index is not to be written: no right to, or a folder whose modes
        forbid it to everyone (root included, whom they would not stop)."""
        path = self.collection.path
        return not os.access(path, os.W_OK) or not os.stat(path).st_mode & 0o222

    def _load(self, kind: str) -> SearchIndex:
        """The main index the manifest names (memory-mapped), or none; retried once when a
        builder replaces the files between reading the manifest and opening them."""
        main, signature = None, None
        for _ in range(2):
            signature = files.manifest_signature(self.directory, kind)
            manifest = files.read_manifest(self.directory, kind)
            if manifest is None or manifest.generation > self.collection.store.generation:
                break  # none, or from another history of this collection (a restored database)
            try:
                main = MainIndex(manifest, *files.open_files(self.directory, manifest), self.collection.read_vectors)
                break
            except FileNotFoundError:
                continue
            except (RuntimeError, ValueError, OSError) as e:  # damaged: it is only derived, rebuild it
                log.warning("index %s of %s is unreadable (%s); it will be rebuilt", manifest.stem,
                            self.collection.name, e)
                break
        self._by_kind[kind] = SearchIndex(kind, self.collection.dim, main, self.collection.read_vectors, signature)
        return self._by_kind[kind]

    # -- maintaining ---------------------------------------------------------------------
    def due(self, kinds: Iterable[str] = KINDS, force: bool = False) -> list[Job]:
        """What is due, from the database's counts (not from what this process has loaded)."""
        store, jobs = self.collection.store, []
        for kind in kinds:
            manifest = files.read_manifest(self.directory, kind)
            live = items.count_live(store, kind)
            if force:
                if live:
                    jobs.append(Job(kind, "build", "asked for", live))
                continue
            changed, stale = 0, 0
            if manifest is not None:
                changed_ids = items.changes(store, kind, manifest.generation, store.generation)[0]
                changed = len(changed_ids)
                stale = manifest.positions - manifest.live + files.count_present(self.directory, manifest, changed_ids)
            job = plan(kind, manifest, self.settings, live, changed, stale, self.collection.dim)
            if job is not None:
                jobs.append(job)
        return jobs

    def update(self, kinds: Iterable[str] = KINDS, *, force: bool = False, wait: float = 0.0,
               on_start: Callable[[Job], None] | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> list[Job]:
        """Do what is due (a build of every kind that has items, with ``force``); return what
        was done. A job whose lock another builder holds is left to it, after ``wait`` seconds."""
        done = []
        for job in self.due(kinds, force):
            if self._run(job, wait, force, on_start, on_progress):
                done.append(job)
        return done

    def _run(self, job: Job, wait: float, force: bool, on_start, on_progress) -> bool:
        with files.build_lock(self.collection.path, self.collection.name, wait) as held:
            if not held:
                return False
            again = self.due([job.kind], force)  # another builder may have done it meanwhile
            if not again:
                return False
            job = again[0]
            if on_start:
                on_start(job)
            manifest = files.read_manifest(self.directory, job.kind)
            if job.action == "fold" and manifest is not None:
                built = fold(self.collection, self.directory, manifest, on_progress)
            else:
                built = build(self.collection, job.kind, self.settings, on_progress)
            files.publish(self.directory, built.manifest, built.index, built.ids, built.rows)
            log.info("%s: %s", self.collection.name, job.describe())
        self._by_kind.pop(job.kind, None)
        return True

    # -- describing ----------------------------------------------------------------------
    def describe(self) -> dict[str, dict]:
        """Per kind with items: the index type, its size, build time and measured recall, and
        how many items wait in the fresh part. Reads the manifests; builds nothing."""
        store, out = self.collection.store, {}
        for kind in KINDS:
            manifest = files.read_manifest(self.directory, kind)
            live = items.count_live(store, kind)
            if not live and manifest is None:
                continue
            entry: dict = {"setting": self.settings.describe(), "items": live}
            if manifest is None:
                entry.update(type="exact", indexed=0, fresh=live,
                             note="no index built yet: searched exactly")
            else:
                size = files.file_bytes(self.directory, manifest)
                entry.update(
                    type=manifest.factory, indexed=manifest.live,
                    fresh=items.count_changed(store, kind, manifest.generation),
                    bytes_per_vector=round(size / max(manifest.positions, 1), 1), file_bytes=size,
                    memory_mapped=maps_from_disk(manifest.factory, self.collection.dim),
                    recall_at_10=manifest.recall_at_10, recall_queries=manifest.recall_queries,
                    build_seconds=manifest.build_seconds, built_at=manifest.built_at, trained_on=manifest.trained_on,
                    search={"knob": manifest.knob, "k_factor": manifest.k_factor, "rerank": manifest.rerank},
                    folded=manifest.folded, note=manifest.note)
            out[kind] = entry
        return out
