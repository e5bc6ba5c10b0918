"""Opening and creating collections: existence, schema upgrades, settings checks, and
atomic creation (a collection appears whole, under its write lock, or not at all)."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ClipforgeError, CollectionError, InputError, NotFoundError
from ..models.fingerprint import model_fingerprint
from ..paths import resolve_collection_path
from . import health
from .ann import IndexSettings
from .lock import LOCK_NAME, write_lock
from .store import SCHEMA_VERSION, Store, create_database

if TYPE_CHECKING:
    from .collection import Collection

DB_NAME = "collection.sqlite"
UPGRADABLE = ("1", "2")  # schema versions this one upgrades on open


class CollectionExists(InputError):
    """Creating a collection that exists (perhaps created a moment ago by another process)."""


@dataclass(frozen=True)
class Created:
    """What ``create`` made, so that ``discard_if_empty`` removes that and nothing else."""

    folder: bool  # the folder itself did not exist before


# Everything a collection writes in its folder; a folder given to `create` may hold other files.
COLLECTION_FILES = (DB_NAME, f"{DB_NAME}-wal", f"{DB_NAME}-shm", f"{DB_NAME}-journal", "vectors", "index", "serving",
                    ".index-build.lock", LOCK_NAME)


def create(cls: type[Collection], where: str | os.PathLike, model: str, *, device: str = "auto", precision: str = "auto",
           index: str = "auto", index_memory: str | int | None = None) -> Collection:
    """A new collection. ``index`` is ``auto`` or a FAISS factory string ("HNSW32",
    "IVF4096,PQ64x4fs"); ``index_memory`` ("4GB") bounds what ``auto`` may choose."""
    from ..models import load_encoder

    path = resolve_collection_path(where)
    if (path / DB_NAME).exists():
        raise CollectionExists(f"collection {where} already exists at {path}")
    encoder = load_encoder(model, device=device, precision=precision)
    fingerprint = model_fingerprint(encoder.spec)
    made_folder = not path.exists()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise CollectionError(f"cannot create collection {where} at {path}: {e.strerror}") from None
    settings = {
        "schema_version": SCHEMA_VERSION, "model_spec": encoder.spec, "dim": encoder.dim,
        "vector_rows": 0, "generation": 0, "created_at": time.time(),
        **({"model_fingerprint": fingerprint} if fingerprint else {}),
        **IndexSettings.checked(index, index_memory, encoder.dim).to_meta(),
    }
    # The model loaded outside the lock (it is slow); the database appears whole, under
    # the lock, or not at all: another process may have created it meanwhile.
    if (path / DB_NAME).exists():
        raise CollectionExists(f"collection {where} was created by another process meanwhile")
    with write_lock(path, path.name):
        try:
            create_database(path / DB_NAME, settings)
        except FileExistsError:
            raise CollectionExists(f"collection {where} was created by another process meanwhile") from None
    collection = cls(path, Store(path / DB_NAME), device, precision)
    collection._encoder = encoder
    collection.created = Created(made_folder)
    return collection


def open_existing(cls: type[Collection], where: str | os.PathLike, model: str | None = None, *, device: str = "auto", precision: str = "auto",
         check: bool = True) -> Collection:
    """Open an existing collection; with ``model``, refuse it unless it is the one used to build it.

    A damaged collection (vectors missing) is refused with what is wrong, unless ``check``
    is False: ``info`` and ``repair`` open it to say what is wrong and to mend it.
    """
    path = resolve_collection_path(where)
    if not (path / DB_NAME).exists():
        hint = "" if path.exists() and any(path.iterdir()) else "; create it with `clipforge index DIR -c NAME --model SPEC`"
        raise NotFoundError(f"no collection '{where}' (looked for {path / DB_NAME}){hint}")
    store = Store(path / DB_NAME)
    try:
        meta = store.all_meta()
        version = meta.get("schema_version")
        if version in UPGRADABLE:
            meta = upgrade(path, store, version)
            version = meta.get("schema_version")
        if version != str(SCHEMA_VERSION):
            raise CollectionError(f"{path}: unknown collection schema version {version!r} (this clipforge reads {SCHEMA_VERSION})")
        wrong = health.settings_problems(meta)
        if wrong:
            raise CollectionError(f"collection {path.name} cannot be opened: {wrong[0]}; its database was edited "
                                  f"or damaged: restore it from a backup, or index again into a new collection")
        collection = cls(path, store, device, precision)
        collection._where = os.fspath(where)
        if check and (found := health.quick_problems(collection)):
            raise health.damaged(collection.name, collection._where, found)
    except BaseException:
        store.close()
        raise
    if model is not None:
        collection.use_model(model)
    return collection


def upgrade(path: Path, store: Store, version: str) -> dict[str, str]:
    """A collection written by an earlier version, brought to this one's schema once."""
    try:
        with write_lock(path, path.name):
            if store.get_meta("schema_version") == version:  # not upgraded meanwhile
                store.upgrade(version)
    except sqlite3.OperationalError as e:  # a read-only file or folder
        raise CollectionError(f"collection {path.name} was made by an earlier clipforge and must be upgraded, "
                              f"which needs write access: {e}") from None
    return store.all_meta()


def open_or_create(cls: type[Collection], where: str | os.PathLike, model: str | None = None, *, index: str | None = None,
                   index_memory: str | int | None = None, **kwargs) -> Collection:
    """Open a collection, or create it; index settings given are kept for later writes and searches."""
    if (resolve_collection_path(where) / DB_NAME).exists():
        collection = cls.open(where, model, **kwargs)
    elif model is None:
        raise InputError(f"collection '{where}' does not exist yet: pass a model (--model SPEC) to create it")
    else:
        try:
            return cls.create(where, model, index=index or "auto", index_memory=index_memory, **kwargs)
        except CollectionExists:  # another process created it first: join it, if the model agrees
            collection = cls.open(where, model, **kwargs)
    try:
        collection.set_index(index, index_memory)
    except BaseException:
        collection.close()
        raise
    return collection


def discard_if_empty(collection: Collection) -> bool:
    """Remove what ``create`` made of ``collection`` (and close it) when it holds nothing at
    all: what a command that created it and was then refused leaves behind. Only the
    collection's own files go, and its folder only if ``create`` made it and it is empty then.
    A process that joined the collection meanwhile finds it gone at its first write, under
    the same lock (``Collection.writing``), and stops: nothing it does is lost."""
    with write_lock(collection.path, collection.name):
        empty = not any(collection.store.counts().values()) and collection.committed_rows() == 0
        collection.close()
        if empty:
            for name in COLLECTION_FILES:
                target = collection.path / name
                if target.is_dir() and not target.is_symlink():
                    shutil.rmtree(target, ignore_errors=True)
                else:
                    target.unlink(missing_ok=True)
    if empty and collection.created is not None and collection.created.folder:
        try:
            collection.path.rmdir()
        except OSError:
            pass  # something else was put there meanwhile
    return empty


@contextmanager
def open_or_create_tentatively(cls: type[Collection], where: str | os.PathLike, model: str | None = None,
                               **kwargs) -> Iterator[Collection]:
    """``open_or_create`` for a command that adds to the collection: one it created is removed
    again if the command is refused before anything is in it, so a typo leaves nothing behind."""
    with cls.open_or_create(where, model, **kwargs) as collection:
        try:
            yield collection
        except ClipforgeError:
            if collection.created is not None:  # by this call, not by another process
                discard_if_empty(collection)
            raise
