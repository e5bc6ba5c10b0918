"""Indexing the images inside WebDataset tar shards: ``clipforge index shards/{00000..00009}.tar``.

A sample is the members sharing a key (``shards.py``); its image becomes an item keyed
``<absolute shard path>#<sample key>``, its ``.txt`` becomes the ``caption`` and the keys of
its ``.json`` become metadata, beside ``shard`` (the shard's file name) and ``key``.

Incremental by shard: a shard ingested whole is marked with its size and mtime, and while
they stay the same it is not even opened. A shard without that mark (new, changed, or
interrupted by a kill) is listed again; members recorded with the shard's current size and
mtime are not read again, content already known reuses its vector, and items of samples
gone from a rewritten shard are marked removed.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence

from ..models.images import is_image_path
from ..data.shards import Member, expand_shards, iter_members
from ..data.sources import ShardMemberSource
from ..errors import InputError
from .ingest import IndexReport, IngestOptions
from .listed import Listed, index_listed
from .cells import metadata_value

# The images webdataset writers name most, preferred in this order when a sample holds several.
_PREFERRED_IMAGES = ("jpg", "jpeg", "png", "webp")


def is_shard_spec(source: str) -> bool:
    return source.lower().endswith(".tar") or "{" in source


def _mark_key(shard: str) -> str:
    return f"ingested shard:{shard}"


def _mark_value(info: os.stat_result, samples: int) -> str:
    return f"{info.st_size} {info.st_mtime_ns} {samples}"


def _samples_if_unchanged(mark: str | None, info: os.stat_result) -> int | None:
    """The number of samples a shard's mark records, if the shard is as it was then."""
    if mark is None:
        return None
    size, mtime_ns, samples = mark.split()
    return int(samples) if (int(size), int(mtime_ns)) == (info.st_size, info.st_mtime_ns) else None


def list_shards(specs: Sequence[str]) -> list[str]:
    """Absolute paths of the shards that ``specs`` name (brace patterns expanded), in order."""
    shards: dict[str, None] = {}
    for spec in specs:
        if spec.startswith("pipe:"):
            raise InputError(f"cannot index {spec}: a pipe: shard cannot be read again by offset; index local shards")
        for shard in expand_shards(os.path.expanduser(spec)):
            shards[os.path.realpath(shard)] = None
    return list(shards)


def _image_member(entries: dict[str, Member]) -> Member | None:
    for ext in _PREFERRED_IMAGES:
        if ext in entries:
            return entries[ext]
    return next((m for ext, m in entries.items() if is_image_path(f"x.{ext}")), None)


def _sample_metadata(shard: str, key: str, entries: dict[str, Member], report: IndexReport) -> dict:
    metadata: dict = {}
    if "json" in entries:
        try:
            found = json.loads(entries["json"].read())
            if not isinstance(found, dict):
                raise ValueError("not a JSON object")
            metadata.update({str(k): v for k, v in metadata_value(found).items() if v is not None})
        except ValueError as e:  # the image is still worth indexing; the run says what was ignored
            report.failures.append({"path": f"{shard}#{key}", "reason": f"its .json was ignored ({e})"})
    if "txt" in entries:
        caption = entries["txt"].read().decode("utf-8", errors="replace").strip()
        if caption:
            metadata["caption"] = caption
    metadata.update(shard=os.path.basename(shard), key=key)
    return metadata


def list_shard(shard: str, info: os.stat_result, report: IndexReport) -> list[Listed]:
    """The images of one shard, with their metadata."""
    samples: dict[str, dict[str, Member]] = {}
    for member in iter_members(shard, keep=("txt", "json")):
        samples.setdefault(member.key, {})[member.ext] = member
    listed = []
    for key, entries in samples.items():
        image = _image_member(entries)
        if image is None:
            continue  # a sample of text alone: nothing to index
        item_key = f"{shard}#{key}"
        source = ShardMemberSource(shard, image.name, image.offset, image.size, info.st_mtime_ns, item_key)
        listed.append(Listed(item_key, source, image.size, info.st_mtime_ns,
                             _sample_metadata(shard, key, entries, report)))
    return listed


def index_shards(collection, specs: Sequence[str], options: IngestOptions, retry_skipped: bool = False) -> IndexReport:
    started = time.perf_counter()
    report = IndexReport()
    shards = list_shards(specs)
    with collection.writing():
        store = collection.store
        failed_before = store.skipped_paths()
        listed, marks, gone, stale = [], {}, [], []
        for shard in shards:
            info = os.stat(shard)
            unchanged = None if retry_skipped else _samples_if_unchanged(store.get_meta(_mark_key(shard)), info)
            if unchanged is not None:
                report.unchanged += unchanged
                continue
            found = list_shard(shard, info, report)
            listed += found
            marks[_mark_key(shard)] = _mark_value(info, len(found))
            present = {entry.key for entry in found}
            gone += [item_id for item_id, key in store.live_keys_with_prefix(f"{shard}#") if key not in present]
            stale += [key for key in failed_before if key.startswith(f"{shard}#") and key not in present]
        index_listed(collection, listed, options, report, retry_skipped)
        if marks:  # only now, every batch committed, is each listed shard whole in the collection
            collection.commit(removed=gone, forget_skipped=stale, marks=marks)
        report.removed += len(gone)
    report.seconds = time.perf_counter() - started
    return report
