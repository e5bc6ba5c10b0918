"""The main index on disk, under ``index/``: derived, disposable, replaced atomically.

One main index per item kind, as three files named by the generation it is current with and
a random token (``image-g42-1f2e3d4c.faiss``, ``.ids.npy``, ``.rows.npy``): the FAISS index,
whose labels are positions, and the item id and vector row at each position (id -1: a
tombstone, an item removed or changed since it was added). ``image.json``, the manifest,
names the current files and says how they were built. A builder writes new files under
temporary names, renames them into place, then renames the new manifest over the old one:
that rename is the commit. A builder killed at any point leaves the old manifest and its
files whole; its temporary files are swept by the next builder.

FAISS memory-maps what its reader can (``IO_FLAG_MMAP_IFC``: flat codes, graph storage, the
lists of ``IVF...`` indexes other than fast-scan ones); the rest it reads into memory. The id
and row arrays are memory-mapped too.
"""

from __future__ import annotations

import dataclasses
import json
import os
import secrets
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from ..lock import LockBusy, write_lock

FORMAT = 3  # the layout of index/; files of other formats are ignored and swept
BUILD_LOCK = ".index-build.lock"  # in the collection's folder: index/ may be deleted at any time


@dataclass
class Manifest:
    kind: str
    generation: int             # current with every item changed at or before it
    stem: str                   # the files' common name
    factory: str                # the FAISS type built
    setting: str                # what the user asked for ("auto" or a factory string)
    budget: int | None          # the memory budget it was built under
    positions: int              # vectors in the FAISS index, tombstones included
    live: int                   # positions that are not tombstones
    trained_on: int             # live vectors when it was trained (0: a type that needs no training)
    knob: int                   # nprobe or efSearch chosen at build time (0: none)
    k_factor: int               # candidates re-ranked per hit wanted
    rerank: bool                # re-rank candidates from the float16 vectors
    recall_at_10: float | None  # measured at build time against exact search
    recall_queries: int
    build_seconds: float
    built_at: float
    folded: int = 0             # vectors added since it was built, without retraining
    tuned_at: int = 0           # live vectors when knob and k_factor were chosen
    note: str = ""
    format: int = FORMAT

    def describe(self) -> dict:
        return dataclasses.asdict(self)


def manifest_path(directory: Path, kind: str) -> Path:
    return directory / f"{kind}.json"


def manifest_signature(directory: Path, kind: str) -> tuple[int, int] | None:
    """What changes whenever the manifest is replaced (a new inode each time)."""
    try:
        st = os.stat(manifest_path(directory, kind))
    except OSError:
        return None
    return st.st_ino, st.st_mtime_ns


def read_manifest(directory: Path, kind: str) -> Manifest | None:
    try:
        values = json.loads(manifest_path(directory, kind).read_text())
        manifest = Manifest(**values)
    except (OSError, ValueError, TypeError):  # absent, half-written by hand, another version: rebuild
        return None
    return manifest if manifest.format == FORMAT and manifest.kind == kind else None


def _paths(directory: Path, stem: str) -> tuple[Path, Path, Path]:
    return directory / f"{stem}.faiss", directory / f"{stem}.ids.npy", directory / f"{stem}.rows.npy"


def open_files(directory: Path, manifest: Manifest, mapped: bool = True):
    """(FAISS index, ids, rows) of a manifest; FileNotFoundError if a builder replaced them
    meanwhile. ``mapped=False`` reads the index into memory, for a builder that adds to it."""
    index_path, ids_path, rows_path = _paths(directory, manifest.stem)
    if not index_path.exists():
        raise FileNotFoundError(index_path)
    index = faiss.read_index(str(index_path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
    ids = np.load(ids_path, mmap_mode="r" if mapped else None)
    rows = np.load(rows_path, mmap_mode="r" if mapped else None)
    if index.ntotal != manifest.positions or len(ids) != manifest.positions or len(rows) != manifest.positions:
        raise ValueError(f"index files of {manifest.stem} disagree with their manifest")
    return index, ids, rows


def count_present(directory: Path, manifest: Manifest, item_ids: np.ndarray) -> int:
    """How many of ``item_ids`` the manifest's index holds (0 if its files are gone)."""
    if not len(item_ids):
        return 0
    try:
        ids = np.load(_paths(directory, manifest.stem)[1], mmap_mode="r")
    except (OSError, ValueError):
        return 0
    return int(np.isin(item_ids, ids).sum())


def compact(values: np.ndarray) -> np.ndarray:
    """Ids or rows in the narrowest integer type that holds them (they are memory-mapped)."""
    values = np.asarray(values)
    fits = not len(values) or (values.max() < 2**31 and values.min() >= -1)
    return values.astype(np.int32 if fits else np.int64)


def _write_synced(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def _save_array(array: np.ndarray):
    def write(path: Path) -> None:
        with open(path, "wb") as f:
            np.save(f, array)
    return write


def publish(directory: Path, manifest: Manifest, index: faiss.Index, ids: np.ndarray, rows: np.ndarray) -> Manifest:
    """Write a main index and make it current (see the module's docstring)."""
    directory.mkdir(parents=True, exist_ok=True)
    manifest.stem = f"{manifest.kind}-g{manifest.generation}-{secrets.token_hex(4)}"
    index_path, ids_path, rows_path = _paths(directory, manifest.stem)
    _write_synced(index_path, lambda path: faiss.write_index(index, str(path)))
    _write_synced(ids_path, _save_array(compact(ids)))
    _write_synced(rows_path, _save_array(compact(rows)))
    text = json.dumps(manifest.describe(), indent=1)
    _write_synced(manifest_path(directory, manifest.kind), lambda path: path.write_text(text))
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    sweep(directory, manifest.kind, keep=manifest.stem)
    return manifest


def sweep(directory: Path, kind: str, keep: str | None) -> None:
    """Delete a kind's files other than the current ones: older generations, an earlier
    format's cache, what a killed builder left. Only a builder (holding the lock) sweeps."""
    if not directory.is_dir():
        return
    for path in directory.iterdir():
        name = path.name.lstrip(".")
        if name.startswith(f"{kind}-") and (keep is None or not name.startswith(f"{keep}.")):
            path.unlink(missing_ok=True)


def leftovers(directory: Path, kind: str) -> list[Path]:
    """Temporary files of a kind, left by a builder that was killed."""
    if not directory.is_dir():
        return []
    return [p for p in directory.iterdir() if p.name.startswith(f".{kind}-") and p.name.endswith(".tmp")]


def file_bytes(directory: Path, manifest: Manifest) -> int:
    return sum(p.stat().st_size for p in _paths(directory, manifest.stem) if p.exists())


@contextmanager
def build_lock(collection_path: Path, name: str, wait: float):
    """Hold the index builder's lock; yield False if another builder holds it longer than ``wait``."""
    with ExitStack() as stack:
        try:
            stack.enter_context(write_lock(collection_path, name, wait=wait, filename=BUILD_LOCK))
        except LockBusy:
            yield False
            return
        yield True
