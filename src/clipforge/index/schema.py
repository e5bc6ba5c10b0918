"""The tables of a collection's database, and the upgrade of databases made by earlier versions.

Version 2 adds what searching at scale needs:
- ``items.changed_at``: the generation that last changed an item's vector or its removal.
  A search index built at generation G is current for every item with ``changed_at <= G``;
  the rest is searched exactly beside it until the index is rebuilt.
- ``item_values``: each scalar of an item's metadata, typed (see ``values.py``) and indexed,
  so that filters select items before ranking.

Version 3 adds ``items.meta_signature``: what besides an image file's bytes its metadata was
read from (its JSON sidecar, the version of the reader; ``data/facts.py``). A file whose
signature changed is read again though its bytes did not; an upgraded collection has none,
so the next index reads its images' metadata (EXIF, sidecars) once, reusing their vectors.
"""

from __future__ import annotations

import json
import sqlite3

from .values import stored

SCHEMA_VERSION = 3

# What version 2 added to version 1's tables, besides the column items.changed_at.
_ADDED_IN_2 = [
    "CREATE INDEX IF NOT EXISTS items_changed ON items (kind, changed_at)",
    """CREATE TABLE IF NOT EXISTS item_values (
        item_id INTEGER NOT NULL,
        key TEXT NOT NULL,
        num REAL,
        text TEXT,
        PRIMARY KEY (item_id, key)
    ) WITHOUT ROWID""",
    "CREATE INDEX IF NOT EXISTS item_values_num ON item_values (key, num, item_id)",
    "CREATE INDEX IF NOT EXISTS item_values_text ON item_values (key, text, item_id)",
]

_ADDED_IN_3 = ["ALTER TABLE items ADD COLUMN meta_signature TEXT"]

TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS items (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('image', 'text')),
    key TEXT NOT NULL UNIQUE,          -- images: absolute path; texts: 'text:' + id or hash
    path TEXT,                         -- images only
    text TEXT,                         -- texts only
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    vector_row INTEGER NOT NULL,
    metadata TEXT NOT NULL DEFAULT '{}',
    removed INTEGER NOT NULL DEFAULT 0,
    added_at REAL NOT NULL,
    changed_at INTEGER NOT NULL DEFAULT 0,
    meta_signature TEXT
);
CREATE INDEX IF NOT EXISTS items_sha256 ON items (sha256);
CREATE INDEX IF NOT EXISTS items_kind ON items (kind, removed);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    size INTEGER,
    mtime_ns INTEGER,
    reason TEXT NOT NULL,
    at REAL NOT NULL
);
""" + ";\n".join(_ADDED_IN_2) + ";\n"


def value_rows(item_id: int, metadata: dict) -> list[tuple]:
    """The ``item_values`` rows of one item's metadata."""
    rows = []
    for key, value in metadata.items():
        typed = stored(value)
        if typed is not None:
            rows.append((item_id, key, *typed))
    return rows


def upgrade(db: sqlite3.Connection, version: str) -> None:
    """Bring a database of an earlier schema ``version`` to this one, in one transaction
    (the caller holds the collection's write lock)."""
    db.execute("BEGIN IMMEDIATE")
    try:
        if version == "1":
            db.execute("ALTER TABLE items ADD COLUMN changed_at INTEGER NOT NULL DEFAULT 0")
            for statement in _ADDED_IN_2:
                db.execute(statement)
            for item_id, metadata in db.execute("SELECT id, metadata FROM items").fetchall():
                db.executemany("INSERT INTO item_values VALUES (?, ?, ?, ?)", value_rows(item_id, json.loads(metadata)))
            version = "2"
        if version == "2":
            for statement in _ADDED_IN_3:
                db.execute(statement)
        db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))
    except BaseException:
        db.execute("ROLLBACK")
        raise
    db.execute("COMMIT")
