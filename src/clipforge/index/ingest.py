"""Incremental indexing, as rclip does it.

- A file with the same path, size and mtime as an indexed one is skipped unread, unless what
  else its metadata comes from (its JSON sidecar) changed: then its metadata is read again.
- A file whose content hash matches a known file reuses that file's vector (moves, copies).
- A file under an indexed folder that has vanished is marked removed.
- A file that cannot be decoded is recorded with its reason and skipped, until it changes.

Work is committed in batches: vectors are appended and fsynced, then one SQLite
transaction records the items and the new vector count. A process killed at any point
loses at most the batch in flight, and a re-run picks up where it stopped.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path


from ..data.facts import current_signature
from ..models.images import DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_PIXELS, file_kind, is_image_path
from ..errors import InputError, NotFoundError
from ..models.pipeline import decode_images
from .reading import ReadImage, read_for_index
from .store import NewItem

log = logging.getLogger(__name__)
_LONE_SURROGATE = re.compile("[\ud800-\udfff]")  # how Python holds bytes that were not UTF-8


@dataclass
class IngestOptions:
    batch_size: int = 64
    workers: int | None = None
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_bytes: int = DEFAULT_MAX_FILE_BYTES
    on_progress: Callable[[int, int], None] | None = None


@dataclass
class IndexReport:
    encoded: int = 0     # decoded and run through the model
    reused: int = 0      # content already known: vector reused, nothing encoded
    unchanged: int = 0   # same path, size and mtime: not even read
    skipped: int = 0     # could not be decoded (listed by `clipforge info`)
    removed: int = 0     # vanished from an indexed folder
    updated: int = 0     # unchanged image, changed metadata (a table row, a shard's caption): rewritten
    seconds: float = 0.0
    failures: list[dict[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "encoded": self.encoded, "reused": self.reused, "unchanged": self.unchanged,
            "skipped": self.skipped, "removed": self.removed, "updated": self.updated,
            "seconds": round(self.seconds, 3),
            "failures": self.failures,
        }


@dataclass
class _FileStat:
    path: str
    size: int
    mtime_ns: int
    meta_signature: str = ""  # what else its metadata is read from (its sidecar): ``data/facts.py``


def scan_sources(sources: Sequence[Path]) -> tuple[list[_FileStat], list[str]]:
    """Image files under ``sources`` (sorted), and the folders that were walked."""
    files: dict[str, _FileStat] = {}
    folders = []
    for source in sources:
        source = Path(os.path.expanduser(source))
        if not source.exists() and not source.is_symlink():
            raise NotFoundError(f"{source} does not exist")
        resolved = source.resolve()
        if resolved.is_dir():
            folders.append(str(resolved))
            for dirpath, dirnames, filenames in os.walk(resolved, onerror=_raise_walk_error):
                dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
                names = set(filenames)
                for name in sorted(filenames):
                    if not name.startswith(".") and is_image_path(name):
                        _add_stat(files, os.path.join(dirpath, name), names)
        elif not resolved.is_file():
            raise InputError(f"cannot index {source}: not a regular file ({file_kind(resolved.stat().st_mode)})")
        elif not os.access(resolved, os.R_OK):
            raise InputError(f"cannot read {source}: permission denied")
        else:
            _add_stat(files, str(resolved))
    return sorted(files.values(), key=lambda f: f.path), folders


def _raise_walk_error(error: OSError) -> None:
    raise InputError(f"cannot read folder {error.filename}: {error.strerror}")


def _add_stat(files: dict[str, _FileStat], path: str, names_in_folder: set[str] | None = None) -> None:
    try:
        st = os.stat(path)
    except OSError:  # a dangling link, or a file gone between listing and stat
        files[path] = _FileStat(path, -1, -1)
        return
    files[path] = _FileStat(path, st.st_size, st.st_mtime_ns, current_signature(path, names_in_folder))


class _ImageBatcher:
    """Collects decoded files and commits them in batches."""

    def __init__(self, collection, report: IndexReport, stats: dict[str, _FileStat], batch_size: int):
        self.collection, self.report, self.stats = collection, report, stats
        self.batch_size = batch_size
        self.to_encode: list[ReadImage] = []
        self.reuse: list[tuple[ReadImage, int | None]] = []  # None: same content as a file in this batch
        self.failed: list[ReadImage] = []
        self.batch_hashes: set[str] = set()
        self.started = False

    def add(self, decoded: ReadImage) -> None:
        if not self.started:  # the decode workers are running by now: load the model beside them
            self.collection.encoder.warm_up()
            self.started = True
        if decoded.error:
            self.failed.append(decoded)
        else:
            known = self.collection.store.vector_row_for_hash(decoded.sha256)
            if known is not None:
                self.reuse.append((decoded, known))
            elif decoded.sha256 in self.batch_hashes:
                self.reuse.append((decoded, None))
            else:
                self.batch_hashes.add(decoded.sha256)
                self.to_encode.append(decoded)
        if len(self.to_encode) + len(self.reuse) + len(self.failed) >= self.batch_size:
            self.commit()

    def _stat(self, decoded: ReadImage) -> tuple[int, int]:
        """(size, mtime) of what was read: a file changed since the scan is recorded as read."""
        if decoded.size is not None:
            return decoded.size, decoded.mtime_ns
        listed = self.stats[decoded.name]
        return listed.size, listed.mtime_ns

    def _item(self, decoded: ReadImage, row: int) -> NewItem:
        size, mtime_ns = self._stat(decoded)
        return NewItem(
            kind="image", key=decoded.name, path=decoded.name, size=size, mtime_ns=mtime_ns,
            sha256=decoded.sha256, vector_row=row, metadata=decoded.metadata, meta_signature=decoded.meta_signature,
        )

    def commit(self) -> None:
        if not (self.to_encode or self.reuse or self.failed):
            return
        collection, store = self.collection, self.collection.store
        items, rows_by_hash = [], {}
        if self.to_encode:
            vectors = collection.encoder.encode_decoded([d.pixels for d in self.to_encode], self.batch_size)
            first = collection.append_vectors(vectors)
            for offset, decoded in enumerate(self.to_encode):
                rows_by_hash[decoded.sha256] = first + offset
                items.append(self._item(decoded, first + offset))
        items += [self._item(d, row if row is not None else rows_by_hash[d.sha256]) for d, row in self.reuse]
        collection.commit(items, skipped=[(d.name, *self._stat(d), d.error) for d in self.failed],
                          forget_skipped=[item.key for item in items])
        self.report.encoded += len(self.to_encode)
        self.report.reused += len(self.reuse)
        self.report.skipped += len(self.failed)
        self.report.failures += [{"path": d.name, "reason": d.error} for d in self.failed]
        self.to_encode, self.reuse, self.failed, self.batch_hashes = [], [], [], set()


def _unchanged(item, listed: _FileStat) -> bool:
    return (item.size, item.mtime_ns, item.meta_signature) == (listed.size, listed.mtime_ns, listed.meta_signature)


def _plan(collection, files: list[_FileStat], report: IndexReport) -> list[_FileStat]:
    """Drop files that are unchanged since they were indexed or since they failed."""
    store = collection.store
    known = store.items_by_key([f.path for f in files])
    failed_before = store.skipped_paths()
    todo, revived = [], []
    for f in files:
        item = known.get(f.path)
        if item is not None and _unchanged(item, f):
            if item.removed:
                revived.append(item.id)
            report.unchanged += 1
        elif failed_before.get(f.path) == (f.size, f.mtime_ns) and f.size >= 0:
            report.skipped += 1
        else:
            todo.append(f)
    if revived:  # a file that vanished and came back unchanged
        collection.commit(revived=revived)
    return todo


def _mark_vanished(collection, folders: list[str], present: set[str], report: IndexReport) -> None:
    store = collection.store
    gone = [item_id for folder in folders for item_id, path in store.live_image_paths_under(folder) if path not in present]
    stale_skips = [p for p in store.skipped_paths() if any(p.startswith(f + "/") for f in folders) and p not in present]
    if not gone and not stale_skips:
        return
    collection.commit(removed=gone, forget_skipped=stale_skips)
    report.removed += len(gone)


def index_images(collection, sources: Sequence[Path], options: IngestOptions) -> IndexReport:
    if options.batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {options.batch_size}")
    started = time.perf_counter()
    report = IndexReport()
    files, folders = scan_sources(sources)
    if not files and not any(collection.store.live_image_paths_under(f) for f in folders):
        raise InputError(f"no image files found in {', '.join(str(s) for s in sources)}")
    with collection.writing():
        todo = _plan(collection, files, report)
        stats = {f.path: f for f in todo}
        batcher = _ImageBatcher(collection, report, stats, options.batch_size)
        encoder = collection.encoder if todo else None
        done = 0
        for decoded in decode_images([f.path for f in todo], encoder.preprocess if encoder else None,
                                     read=read_for_index, workers=options.workers,
                                     max_pixels=options.max_pixels, max_bytes=options.max_bytes):
            batcher.add(decoded)
            done += 1
            if options.on_progress:
                options.on_progress(done, len(todo))
        batcher.commit()
        _mark_vanished(collection, folders, {f.path for f in files}, report)
    report.seconds = time.perf_counter() - started
    return report


def _text_key(text: str, given_id: str | None) -> str:
    return f"text:id:{given_id}" if given_id is not None else "text:sha256:" + hashlib.sha256(text.encode()).hexdigest()


def index_texts(collection, texts: Sequence[str], *, ids=None, metadata=None, batch_size: int = 256,
                on_progress=None) -> IndexReport:
    started = time.perf_counter()
    texts = list(texts)
    if ids is not None and len(ids) != len(texts):
        raise InputError(f"got {len(ids)} ids for {len(texts)} texts")
    if metadata is not None and len(metadata) != len(texts):
        raise InputError(f"got {len(metadata)} metadata entries for {len(texts)} texts")
    if not texts:
        raise InputError("no texts to add")
    for number, text in enumerate(texts, 1):
        if not isinstance(text, str) or not text.strip():
            raise InputError(f"text {number} is empty")
        if not text.isascii() and _LONE_SURROGATE.search(text):
            raise InputError(f"text {number} is not valid Unicode (it holds undecodable bytes)")
    report = IndexReport()
    keys = [_text_key(t, None if ids is None else str(ids[i])) for i, t in enumerate(texts)]
    with collection.writing():
        known = collection.store.items_by_key(keys)
        todo = [i for i, key in enumerate(keys) if key not in known or known[key].text != texts[i]]
        report.unchanged = len(texts) - len(todo)
        todo = list({keys[i]: i for i in todo}.values())  # a repeated key: the last one wins
        for start in range(0, len(todo), batch_size):
            chunk = todo[start : start + batch_size]
            vectors = collection.encoder.encode_texts([texts[i] for i in chunk])
            first = collection.append_vectors(vectors)
            items = [
                NewItem(kind="text", key=keys[i], text=texts[i], vector_row=first + n,
                        metadata=dict(metadata[i]) if metadata is not None else {})
                for n, i in enumerate(chunk)
            ]
            collection.commit(items)
            report.encoded += len(chunk)
            if on_progress:
                on_progress(start + len(chunk), len(todo))
    report.seconds = time.perf_counter() - started
    return report
