"""Whether a collection's parts agree, and a repair for when they do not.

SQLite is the source of truth: the settings (dimension, committed vector rows) and the items,
each pointing at a vector row. The segments under ``vectors/`` must hold every committed row;
the FAISS files under ``index/`` are a cache. Damage met in practice: a segment deleted or cut
short (a clean-up tool, an interrupted copy), settings edited by hand, a file that is not a
database at all.

Every command checks the cheap part when it opens a collection (a ``stat`` per segment) and
stops with one line; ``info`` checks everything and lists it; ``repair`` rebuilds what can be
rebuilt: a lost vector is encoded again from its item's text, or from its image file while
that file still holds the content it had. Items whose source is gone too are dropped and
reported.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ..errors import CollectionError
from ..paths import readable_path
from .lock import write_lock
from .reading import read_for_index
from .store import Item

_REPAIR_BATCH = 256


def settings_problems(meta: dict[str, str]) -> list[str]:
    """The settings a collection cannot be opened without, checked before anything uses them."""
    problems = []
    if not meta.get("model_spec"):
        problems.append("its settings name no model")
    for key, least in (("dim", 1), ("vector_rows", 0)):
        value = meta.get(key)
        if value is None or not value.isdigit() or int(value) < least:
            problems.append(f"its setting {key} is {value!r}, not a whole number of at least {least}")
    return problems


def quick_problems(collection) -> list[str]:
    """What every command checks on opening: that the committed vectors are on disk."""
    return collection.vectors.shortfalls()


def problems(collection) -> list[str]:
    """Everything ``info`` checks: the quick checks, the database's own integrity, and what the
    items point at (this reads every item row)."""
    found = quick_problems(collection)
    verdict = [row[0] for row in collection.store.db.execute("PRAGMA quick_check(5)")]
    if verdict != ["ok"]:
        found.append(f"collection.sqlite fails its integrity check: {verdict[0]}")
    committed = collection.committed_rows()
    beyond = collection.store.db.execute(
        "SELECT COUNT(*) FROM items WHERE vector_row >= ? OR vector_row < 0", (committed,)
    ).fetchone()[0]
    if beyond:
        found.append(f"{beyond} items point past the {committed} committed vectors")
    return found


def damaged(collection_name: str, where: str, found: list[str]) -> CollectionError:
    more = f" (and {len(found) - 1} more problems)" if len(found) > 1 else ""
    return CollectionError(
        f"collection {collection_name} is damaged: {found[0]}{more}; `clipforge info -c {where}` lists what "
        f"is wrong and `clipforge repair -c {where}` rebuilds what can be rebuilt"
    )


@dataclass
class RepairReport:
    problems: list[str]                                  # found before the repair
    recovered: int = 0                                   # vectors encoded again from their sources
    lost: list[str] = field(default_factory=list)        # items dropped: vector and source both gone
    remaining: list[str] = field(default_factory=list)   # still wrong afterwards

    def to_dict(self) -> dict:
        return {"problems": self.problems, "recovered": self.recovered, "lost": self.lost,
                "remaining": self.remaining}


def repair(collection, on_progress: Callable[[int, int], None] | None = None) -> RepairReport:
    """Rebuild what can be rebuilt; see the module's docstring."""
    report = RepairReport(problems(collection))
    if any(p.startswith("collection.sqlite") for p in report.problems):
        raise CollectionError(
            f"collection {collection.name} cannot be repaired: its database, the source of truth, is damaged "
            f"({report.problems[-1]}); restore collection.sqlite from a backup, or index again into a new collection"
        )
    store = collection.store
    with write_lock(collection.path, collection.name):
        in_use = np.array([r[0] for r in store.db.execute("SELECT DISTINCT vector_row FROM items")], dtype=np.int64)
        total = max(collection.committed_rows(), int(in_use.max()) + 1 if len(in_use) else 0)
        collection.vectors.rows = total
        lost_rows = in_use[~collection.vectors.present(in_use)] if len(in_use) else in_use
        dropped = _rebuild_rows(collection, lost_rows, total, report, on_progress)
        collection.commit(deleted=[item.id for item in dropped])  # the segments now hold `total` rows
        report.lost = [_describe(item) for item in dropped]
        shutil.rmtree(collection.path / "index", ignore_errors=True)  # a cache: rebuilt on the next search
    report.remaining = problems(collection)
    return report


def _rebuild_rows(collection, lost_rows: np.ndarray, total: int, report: RepairReport,
                  on_progress: Callable[[int, int], None] | None) -> list[Item]:
    """Encode the lost rows again, in batches; the items none of whose sources is left."""
    collection.vectors.resize(total)
    if not len(lost_rows):
        return []
    items_by_row: dict[int, list[Item]] = defaultdict(list)
    for item in collection.store.items_with_rows([int(r) for r in lost_rows]):
        items_by_row[item.vector_row].append(item)
    encoder = collection.encoder  # the collection's own model; refuses a changed one
    dropped: list[Item] = []
    rows = sorted(items_by_row)
    for start in range(0, len(rows), _REPAIR_BATCH):
        texts: dict[int, str] = {}
        pixels: dict[int, np.ndarray] = {}
        for row in rows[start : start + _REPAIR_BATCH]:
            kind, source = _intact_source(items_by_row[row], encoder.preprocess)
            if kind is None:
                dropped += items_by_row[row]
            else:
                (texts if kind == "text" else pixels)[row] = source
        if texts:
            collection.vectors.overwrite(np.asarray(list(texts)), encoder.encode_texts(list(texts.values())))
        if pixels:
            collection.vectors.overwrite(np.asarray(list(pixels)), encoder.encode_decoded(list(pixels.values())))
        report.recovered += len(texts) + len(pixels)
        if on_progress:
            on_progress(min(start + _REPAIR_BATCH, len(rows)), len(rows))
    return dropped


def _intact_source(items: list[Item], preprocess) -> tuple[str | None, object]:
    """("text", the text) or ("image", its pixels) from the first of a row's items whose source
    is intact; (None, None) when none is."""
    for item in items:
        if item.kind == "text" and item.text:
            return "text", item.text
        if item.kind == "image" and item.path:
            decoded = read_for_index(item.path, preprocess)
            if decoded.error is None and decoded.sha256 == item.sha256:  # the content it had when indexed
                return "image", decoded.pixels
    return None, None


def _describe(item: Item) -> str:
    if item.kind == "image":
        return readable_path(item.path or item.key)
    return f"text {item.key}: {item.text[:60] if item.text else ''}"
