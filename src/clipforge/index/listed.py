"""Indexing images that a table or a tar shard lists, rather than files found by walking folders.

Each listed image has a key (an absolute path, a URL, or ``<shard>#<sample key>``), a source
the decode pool reads (a path, a ``UrlSource`` or a ``ShardMemberSource``) and metadata of its
own (the table's other columns, the sample's caption). Incremental as folders are:

- an image listed with the size and mtime it was indexed with (a URL: one already indexed)
  is not read again; if its listed metadata changed, only the metadata is rewritten;
- one that failed before, listed unchanged, is not tried again (``retry_skipped`` does);
- the rest goes through the decode pool and the same batches as files, so content already
  known reuses its vector, and a kill loses at most the batch in flight.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ..models.pipeline import decode_images
from .ingest import IndexReport, IngestOptions, _FileStat, _ImageBatcher
from .reading import ReadImage, read_for_index
from .store import Item, NewItem

# Keys that describe the image itself: what a table or a caption says cannot change them.
_OWN_KEYS = ("width", "height", "bytes")
_METADATA_BATCH = 2048


@dataclass
class Listed:
    key: str
    source: Any  # a path (str), or a source from ``data.sources``
    size: int | None  # as listed now; None for a URL
    mtime_ns: int | None
    metadata: dict[str, Any] = field(default_factory=dict)
    meta_signature: str | None = None  # a local file's: what else its metadata is read from (``data/facts.py``)

    @property
    def is_file(self) -> bool:
        return isinstance(self.source, str)


def merged_metadata(own: dict[str, Any], listed: dict[str, Any]) -> dict[str, Any]:
    """The listed metadata over what decoding found, except the image's own size."""
    return {**own, **listed, **{k: own[k] for k in _OWN_KEYS if k in own}}


class _ListedBatcher(_ImageBatcher):
    """The folder batcher, recording each image under its listed key with its listed metadata."""

    def __init__(self, collection, report: IndexReport, listed: dict[str, Listed], batch_size: int):
        stats = {key: _FileStat(key, entry.size, entry.mtime_ns) for key, entry in listed.items()}
        super().__init__(collection, report, stats, batch_size)
        self.listed = listed

    def _item(self, decoded: ReadImage, row: int) -> NewItem:
        item = super()._item(decoded, row)
        entry = self.listed[decoded.name]  # the decode pool names a result by its source's name: the key
        item.key = entry.key
        item.path = entry.source if entry.is_file else None  # only a local file can be served or re-read
        found = {k: v for k, v in item.metadata.items() if v is not None}  # a URL's size is unknown here
        item.metadata = merged_metadata(found, entry.metadata)
        return item


def _metadata_changed(item: Item, listed: Listed) -> bool:
    return merged_metadata(item.metadata, listed.metadata) != item.metadata


def _with_metadata(item: Item, metadata: dict[str, Any]) -> NewItem:
    """``item`` unchanged but for its metadata (its vector row and file facts are kept)."""
    names = {f.name for f in dataclasses.fields(NewItem)}
    kept = {k: v for k, v in dataclasses.asdict(item).items() if k in names and k != "metadata"}
    return NewItem(**kept, metadata=metadata)


def plan(collection, listed: Sequence[Listed], report: IndexReport, retry_skipped: bool = False) -> list[Listed]:
    """What must be read; commits what needs no reading (revivals, metadata updates)."""
    store = collection.store
    known = store.items_by_key([entry.key for entry in listed])
    failed_before = {} if retry_skipped else store.skipped_paths()
    todo, revived, updated = [], [], []
    for entry in listed:
        item = known.get(entry.key)
        if item is not None and (item.size, item.mtime_ns, item.meta_signature) == \
                (entry.size, entry.mtime_ns, entry.meta_signature):
            report.unchanged += 1
            if item.removed:
                revived.append(item.id)
            if _metadata_changed(item, entry):
                updated.append(_with_metadata(item, merged_metadata(item.metadata, entry.metadata)))
        elif failed_before.get(entry.key) == (entry.size, entry.mtime_ns) and (entry.size is None or entry.size >= 0):
            report.skipped += 1
        else:
            todo.append(entry)
    if revived:
        collection.commit(revived=revived)
    for start in range(0, len(updated), _METADATA_BATCH):
        collection.commit(updated[start : start + _METADATA_BATCH])
    report.updated += len(updated)
    return todo


def index_listed(collection, listed: Sequence[Listed], options: IngestOptions, report: IndexReport,
                 retry_skipped: bool = False) -> IndexReport:
    """Index ``listed`` (inside ``collection.writing()``); later entries win over earlier ones
    with the same key."""
    by_key = {entry.key: entry for entry in listed}
    todo = plan(collection, list(by_key.values()), report, retry_skipped)
    encoder = collection.encoder if todo else None
    batcher = _ListedBatcher(collection, report, {entry.key: entry for entry in todo}, options.batch_size)
    done = 0
    for decoded in decode_images([entry.source for entry in todo], encoder.preprocess if encoder else None,
                                 read=read_for_index, workers=options.workers,
                                 max_pixels=options.max_pixels, max_bytes=options.max_bytes):
        batcher.add(decoded)
        done += 1
        if options.on_progress:
            options.on_progress(done, len(todo))
    batcher.commit()
    return report
