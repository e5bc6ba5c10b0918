"""The SQLite source of truth of a collection.

One row per item (an image file or a text), the files that could not be decoded and why,
and the collection's settings (model spec, dimension, schema version). The vector of an
item lives in the float16 segments at ``vector_row``; two items with the same content share
a row. ``vector_rows`` in ``meta`` is the number of rows that committed transactions
reference: the segments are cut back to it on open, which is what makes a killed write
harmless.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from collections import Counter
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import CollectionError, InputError
from . import where
from .schema import SCHEMA_VERSION, TABLES, upgrade, value_rows

__all__ = ["SCHEMA_VERSION", "Item", "NewItem", "Store", "create_database"]

@dataclass
class Item:
    id: int
    kind: str
    key: str
    path: str | None
    text: str | None
    size: int | None
    mtime_ns: int | None
    sha256: str | None
    vector_row: int
    metadata: dict[str, Any] = field(default_factory=dict)
    removed: bool = False
    meta_signature: str | None = None  # images: what besides the file its metadata was read from

    @classmethod
    def from_row(cls, row: sqlite3.Row) -> "Item":
        values = dict(row)
        values.pop("added_at", None)
        values.pop("changed_at", None)
        values["metadata"] = json.loads(values["metadata"])
        values["removed"] = bool(values["removed"])
        return cls(**values)


@dataclass
class NewItem:
    """An item to insert, or to update in place when its key already exists."""

    kind: str
    key: str
    vector_row: int
    path: str | None = None
    text: str | None = None
    size: int | None = None
    mtime_ns: int | None = None
    sha256: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    meta_signature: str | None = None


def _fs(text: str | None) -> bytes | None:
    """A path as the bytes the file system uses, for a ``CAST(? AS TEXT)`` parameter.

    Linux file names are bytes, and Python holds the ones that are not UTF-8 with lone
    surrogates, which sqlite3 refuses to encode. SQLite stores any bytes in a TEXT column, so
    a path goes in as its raw bytes and comes back through ``_read_text``: lossless, and a
    UTF-8 path is stored exactly as before.
    """
    return None if text is None else text.encode("utf-8", "surrogateescape")


def _read_text(data: bytes) -> str:
    return data.decode("utf-8", "surrogateescape")


def _connect(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    db.text_factory = _read_text
    return db


def create_database(path: Path, settings: dict[str, Any]) -> None:
    """A new collection database holding ``settings``, or FileExistsError if ``path`` exists.

    It is written under a temporary name and linked into place, so a reader finds either no
    database or a complete one, and two creators cannot both succeed.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.new")
    tmp.unlink(missing_ok=True)
    try:
        db = _connect(tmp)
        try:
            db.executescript(TABLES)
            db.execute("BEGIN IMMEDIATE")
            db.executemany("INSERT INTO meta (key, value) VALUES (?, ?)", [(k, str(v)) for k, v in settings.items()])
            db.execute("COMMIT")
        finally:
            db.close()
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.link(tmp, path)
        directory = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(directory)
        finally:
            os.close(directory)
    finally:
        tmp.unlink(missing_ok=True)


class Store:
    def __init__(self, path: Path):
        self.path = path
        try:
            self.db = _connect(path)
            self.db.row_factory = sqlite3.Row
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.execute("PRAGMA synchronous=FULL")
        except sqlite3.DatabaseError as e:
            raise CollectionError(f"{path} is not a readable collection database ({e})") from None

    def close(self) -> None:
        self.db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        self.db.execute("BEGIN IMMEDIATE")
        try:
            yield self.db
        except BaseException:
            self.db.execute("ROLLBACK")
            raise
        self.db.execute("COMMIT")

    # -- settings --------------------------------------------------------------------
    def get_meta(self, key: str, default: str | None = None) -> str | None:
        row = self.db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else default

    def all_meta(self) -> dict[str, str]:
        try:
            return dict(self.db.execute("SELECT key, value FROM meta").fetchall())
        except sqlite3.DatabaseError as e:
            raise CollectionError(f"{self.path} is not a readable collection database ({e})") from None

    def set_meta(self, key: str, value: Any, db: sqlite3.Connection | None = None) -> None:
        (db or self.db).execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, str(value)),
        )

    def upgrade(self, version: str) -> None:
        """Bring a database of schema ``version`` to this one (under the write lock)."""
        upgrade(self.db, version)

    def bump_generation(self, db: sqlite3.Connection) -> int:
        """The next generation, which this transaction's changes are stamped with."""
        return int(db.execute(
            "INSERT INTO meta (key, value) VALUES ('generation', '1') "
            "ON CONFLICT(key) DO UPDATE SET value = CAST(value AS INTEGER) + 1 RETURNING value"
        ).fetchone()[0])

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation", "0"))

    # -- items -----------------------------------------------------------------------
    def upsert_items(self, db: sqlite3.Connection, items: Iterable[NewItem], generation: int) -> None:
        """Insert items, or update those whose key exists; their typed values follow their metadata."""
        now = time.time()
        for i in items:
            item_id = db.execute(
                """INSERT INTO items (kind, key, path, text, size, mtime_ns, sha256, vector_row, metadata, removed,
                                      added_at, changed_at, meta_signature)
                   VALUES (?, CAST(? AS TEXT), CAST(? AS TEXT), ?, ?, ?, ?, ?, ?, 0, ?, ?, ?)
                   ON CONFLICT(key) DO UPDATE SET
                     path = excluded.path, text = excluded.text, size = excluded.size,
                     mtime_ns = excluded.mtime_ns, sha256 = excluded.sha256, vector_row = excluded.vector_row,
                     metadata = excluded.metadata, removed = 0, changed_at = excluded.changed_at,
                     meta_signature = excluded.meta_signature
                   RETURNING id""",
                (i.kind, _fs(i.key), _fs(i.path), i.text, i.size, i.mtime_ns, i.sha256, i.vector_row,
                 json.dumps(i.metadata, ensure_ascii=False, sort_keys=True), now, generation, i.meta_signature),
            ).fetchone()[0]
            db.execute("DELETE FROM item_values WHERE item_id = ?", (item_id,))
            db.executemany("INSERT INTO item_values VALUES (?, ?, ?, ?)", value_rows(item_id, i.metadata))

    def items_by_key(self, keys: list[str]) -> dict[str, Item]:
        found: dict[str, Item] = {}
        for start in range(0, len(keys), 500):  # SQLite caps the number of parameters
            chunk = keys[start : start + 500]
            marks = ",".join(["CAST(? AS TEXT)"] * len(chunk))
            for row in self.db.execute(f"SELECT * FROM items WHERE key IN ({marks})", [_fs(k) for k in chunk]):
                found[row["key"]] = Item.from_row(row)
        return found

    def vector_row_for_hash(self, sha256: str) -> int | None:
        row = self.db.execute("SELECT vector_row FROM items WHERE sha256 = ? LIMIT 1", (sha256,)).fetchone()
        return row[0] if row else None

    def get_items(self, ids: Iterable[int]) -> dict[int, Item]:
        ids = list(ids)
        found: dict[int, Item] = {}
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            for row in self.db.execute(f"SELECT * FROM items WHERE id IN ({marks})", chunk):
                found[row["id"]] = Item.from_row(row)
        return found

    def items_with_rows(self, rows: list[int]) -> list[Item]:
        """Every item (removed ones too) pointing at one of ``rows``."""
        found: list[Item] = []
        for start in range(0, len(rows), 500):
            chunk = rows[start : start + 500]
            marks = ",".join("?" * len(chunk))
            found += [Item.from_row(r) for r in self.db.execute(f"SELECT * FROM items WHERE vector_row IN ({marks})", chunk)]
        return found

    def live_vector_rows(self, kind: str) -> tuple[list[int], list[int]]:
        """(item ids, vector rows) of the items of ``kind`` that are not removed, by id."""
        rows = self.db.execute(
            "SELECT id, vector_row FROM items WHERE kind = ? AND removed = 0 ORDER BY id", (kind,)
        ).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def matching(self, kind: str, conditions: list) -> tuple[np.ndarray, np.ndarray]:
        """(item ids, vector rows) of the live items of ``kind`` that meet every condition, by id."""
        clause, params = where.sql(conditions)
        try:
            found = self.db.execute(
                f"SELECT items.id, items.vector_row FROM items WHERE items.kind = ? AND items.removed = 0 AND {clause} "
                "ORDER BY items.id", [kind, *params]).fetchall()
        except UnicodeEncodeError:
            raise InputError("a filter holds text that is not valid Unicode") from None
        array = np.array(found, dtype=np.int64).reshape(-1, 2)
        return array[:, 0].copy(), array[:, 1].copy()

    def live_image_paths_under(self, prefix: str) -> list[tuple[int, str]]:
        # Compare on the text up to the separator, so /a/b does not match /a/bc.
        like = prefix.rstrip("/").replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "/%"
        return [
            (r[0], r[1])
            for r in self.db.execute(
                "SELECT id, path FROM items WHERE kind = 'image' AND removed = 0 AND path LIKE CAST(? AS TEXT) ESCAPE '\\'",
                (_fs(like),),
            )
        ]

    def live_keys_with_prefix(self, prefix: str) -> list[tuple[int, str]]:
        """(id, key) of the live items whose key starts with ``prefix`` (the members of a shard)."""
        low = _fs(prefix)
        high = low[:-1] + bytes([low[-1] + 1]) if low and low[-1] < 255 else None
        query = "SELECT id, key FROM items WHERE removed = 0 AND key >= CAST(? AS TEXT)"  # a range: the key index serves it
        params = [low]
        if high is not None:
            query += " AND key < CAST(? AS TEXT)"
            params.append(high)
        return [(r[0], r[1]) for r in self.db.execute(query, params) if r[1].startswith(prefix)]

    def set_removed(self, db: sqlite3.Connection, ids: Iterable[int], removed: bool, generation: int) -> None:
        db.executemany("UPDATE items SET removed = ?, changed_at = ? WHERE id = ?",
                       [(int(removed), generation, i) for i in ids])

    def delete_items(self, db: sqlite3.Connection, ids: Iterable[int]) -> None:
        ids = [(i,) for i in ids]
        db.executemany("DELETE FROM item_values WHERE item_id = ?", ids)
        db.executemany("DELETE FROM items WHERE id = ?", ids)

    def counts(self) -> dict[str, int]:
        out = {"images": 0, "texts": 0, "removed": 0}
        for kind, removed, n in self.db.execute("SELECT kind, removed, COUNT(*) FROM items GROUP BY kind, removed"):
            if removed:
                out["removed"] += n
            else:
                out["images" if kind == "image" else "texts"] += n
        out["skipped"] = self.db.execute("SELECT COUNT(*) FROM skipped").fetchone()[0]
        return out

    def metadata_keys(self) -> dict[str, int]:
        """How many live items hold each metadata key that filters compare, most common first."""
        # The whole table is counted from its index on key alone; removed items, usually few,
        # are then taken off, rather than looking up every row's item.
        counts = Counter(dict(self.db.execute("SELECT key, COUNT(*) FROM item_values GROUP BY key").fetchall()))
        counts.subtract(dict(self.db.execute(
            "SELECT key, COUNT(*) FROM item_values WHERE item_id IN (SELECT id FROM items WHERE removed = 1) "
            "GROUP BY key").fetchall()))
        return {key: n for key, n in counts.most_common() if n > 0}

    # -- files that could not be decoded -----------------------------------------------
    def skipped_entry(self, path: str) -> sqlite3.Row | None:
        return self.db.execute("SELECT * FROM skipped WHERE path = CAST(? AS TEXT)", (_fs(path),)).fetchone()

    def skipped_paths(self) -> dict[str, tuple[int | None, int | None]]:
        return {r[0]: (r[1], r[2]) for r in self.db.execute("SELECT path, size, mtime_ns FROM skipped")}

    def record_skipped(self, db: sqlite3.Connection, entries: Iterable[tuple[str, int | None, int | None, str]]) -> None:
        now = time.time()
        db.executemany(
            "INSERT OR REPLACE INTO skipped (path, size, mtime_ns, reason, at) VALUES (CAST(? AS TEXT), ?, ?, ?, ?)",
            [(_fs(p), s, m, r, now) for p, s, m, r in entries],
        )

    def forget_skipped(self, db: sqlite3.Connection, paths: Iterable[str]) -> None:
        db.executemany("DELETE FROM skipped WHERE path = CAST(? AS TEXT)", [(_fs(p),) for p in paths])

    def list_skipped(self, limit: int | None = None) -> list[dict[str, Any]]:
        query = "SELECT path, reason FROM skipped ORDER BY path"
        if limit:
            query += f" LIMIT {int(limit)}"
        return [dict(r) for r in self.db.execute(query)]
