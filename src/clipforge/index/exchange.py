"""Embeddings in and out in clip-retrieval's layout (``exchange_layout.py`` describes it).

Import: each row of a partition becomes an image item (from ``img_emb``) keyed
``import:<source>:<id>``, and its caption a text item (from ``text_emb``) keyed
``text:caption:<that key>``, both with the row's metadata columns as metadata. ``source``
defaults to the folder's name; ``id`` is the row's ``image_path``, else its ``url``, else its
position (``exchange_layout.choose_ids``). Items carry no file: the vectors are all there is.
An item's ``sha256`` is that of its stored float16 vector, so a re-import writes only rows
whose vector or metadata changed. Everything is checked before the first write; then rows
are committed in batches, and each partition imported whole is marked with its files' sizes
and mtimes, so that a re-import does not even read it. A kill loses at most a batch.

Export writes the live image items (text items alone where a collection has no images) as
float16 vectors exactly as stored, with ``text_emb`` beside them when every image has its
caption item (as an import makes them), and the metadata as Parquet.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import shutil
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelMismatchError
from . import exchange_layout as layout
from .store import NewItem
from .cells import row_metadata

CAPTION_PREFIX = "text:caption:"
MODEL_CHECK_SAMPLES = 16
MODEL_CHECK_MIN_COSINE = 0.9  # the same model gives ~0.99 through any precision or port; another ~0


@dataclass
class ImportReport:
    images: int = 0      # image items written
    texts: int = 0       # caption items written
    unchanged: int = 0   # rows already imported as they are
    partitions: int = 0
    partitions_unchanged: int = 0  # marked imported, files unchanged: not read
    no_caption: int = 0  # text vectors whose caption is empty: not imported
    key_column: str = ""
    model_check: float | None = None  # median cosine of re-encoded captions; None: not checked
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def _mark_key(part: layout.Partition) -> str:
    return f"imported partition:{part.metadata.resolve()}"


def check_model(collection, partitions: list[layout.Partition]) -> float | None:
    """The median cosine between some captions' text vectors and the collection's model's own
    encoding of them; refuses vectors that another model made. None where there are no texts."""
    _, pq = layout.parquet()
    with_text = [p for p in partitions if p.text is not None and p.rows]
    total = sum(p.rows for p in with_text)
    if not total:
        return None
    picks = {int(i) for i in np.linspace(0, total - 1, min(MODEL_CHECK_SAMPLES, total))}
    captions, given, offset = [], [], 0
    for part in with_text:
        rows = sorted(i - offset for i in picks if offset <= i < offset + part.rows)
        if rows:
            column = pq.read_table(part.metadata, columns=["caption"]).column(0).to_pylist()
            vectors = part.text.vectors()
            for row in rows:
                if isinstance(column[row], str) and column[row].strip():
                    captions.append(column[row])
                    given.append(np.asarray(vectors[row], dtype=np.float32))
        offset += part.rows
    if not captions:
        return None
    ours = collection.encoder.encode_texts(captions)
    given_array = np.stack(given)
    cosines = np.sum(ours * given_array, axis=1) / np.linalg.norm(given_array, axis=1)
    median = float(np.median(cosines))
    if median < MODEL_CHECK_MIN_COSINE:
        raise ModelMismatchError(
            f"these embeddings do not come from {collection.model_spec}: encoding {len(captions)} of their captions "
            f"with it gives a median cosine of {median:.2f} with theirs (the same model gives above "
            f"{MODEL_CHECK_MIN_COSINE}); import them into a collection of their model, or pass --skip-model-check "
            "if their text tower differs on purpose")
    return median


def _vector_hash(vector: np.ndarray) -> str:
    return hashlib.sha256(b"float16 vector:" + vector.tobytes()).hexdigest()


class _Importer:
    """Writes checked partitions, batch by batch (inside ``collection.writing()``)."""

    def __init__(self, collection, source: str, report: ImportReport, batch_size: int, on_progress):
        self.collection, self.source, self.report = collection, source, report
        self.batch_size, self.on_progress, self.done = batch_size, on_progress, 0

    def partition(self, part: layout.Partition, total: int) -> None:
        _, pq = layout.parquet()
        rows = pq.read_table(part.metadata).to_pylist()
        images = part.image.vectors() if part.image else None
        texts = part.text.vectors() if part.text else None
        for start in range(0, part.rows, self.batch_size):
            end = min(start + self.batch_size, part.rows)
            self._batch([f"import:{self.source}:{i}" for i in part.ids[start:end]],
                        [row_metadata(r, r) for r in rows[start:end]],
                        None if images is None else np.ascontiguousarray(images[start:end], dtype="<f2"),
                        None if texts is None else np.ascontiguousarray(texts[start:end], dtype="<f2"))
            self.done += end - start
            if self.on_progress:
                self.on_progress(self.done, total)

    def _batch(self, keys: list[str], metadata: list[dict], images, texts) -> None:
        store = self.collection.store
        wanted = []  # (kind, key, text, metadata, vector)
        for n, key in enumerate(keys):
            if images is not None:
                wanted.append(("image", key, None, metadata[n], images[n]))
            if texts is not None:
                caption = metadata[n].get("caption")
                if isinstance(caption, str) and caption.strip():
                    wanted.append(("text", CAPTION_PREFIX + key, caption, metadata[n], texts[n]))
                else:
                    self.report.no_caption += 1
        known = store.items_by_key([w[1] for w in wanted])
        changed = []
        for kind, key, text, meta, vector in wanted:
            digest = _vector_hash(vector)
            item = known.get(key)
            if item is not None and not item.removed and (item.sha256, item.metadata, item.text) == (digest, meta, text):
                self.report.unchanged += 1
            else:
                changed.append((kind, key, text, meta, vector, digest))
        if not changed:
            return
        first = self.collection.append_vectors(np.stack([c[4] for c in changed]))
        self.collection.commit([NewItem(kind=kind, key=key, text=text, metadata=meta, sha256=digest, vector_row=first + n)
                                for n, (kind, key, text, meta, _, digest) in enumerate(changed)])
        self.report.images += sum(c[0] == "image" for c in changed)
        self.report.texts += sum(c[0] == "text" for c in changed)


def import_embeddings(collection, folder: str | os.PathLike, *, source: str | None = None,
                      key_column: str = layout.KEY_AUTO, check_model_vectors: bool = True,
                      batch_size: int = 4096, on_progress=None) -> ImportReport:
    started = time.perf_counter()
    root = Path(folder).expanduser().resolve()
    source = source or root.name
    if not source or ":" in source:
        raise InputError(f"import source name {source!r} must be non-empty and hold no ':'")
    if batch_size < 1:
        raise InputError(f"batch size must be at least 1, got {batch_size}")
    report = ImportReport()
    partitions = layout.find_partitions(root)
    report.partitions = len(partitions)
    with collection.writing():
        # A partition is imported as its files stood, under the keys asked for then.
        signatures = {p.name: f"{layout.partition_signature(p)} {key_column} {source}" for p in partitions}
        todo = [p for p in partitions if collection.store.get_meta(_mark_key(p)) != signatures[p.name]]
        report.partitions_unchanged = len(partitions) - len(todo)
        report.unchanged = sum(p.rows * ((p.image is not None) + (p.text is not None)) for p in partitions if p not in todo)
        if todo:  # every check before the first write: a refusal changes nothing
            layout.check_metadata(root, partitions)
            layout.check_vectors(root, todo, collection.dim, collection.name)
            report.key_column = layout.choose_ids(root, partitions, key_column)
            if check_model_vectors:
                report.model_check = check_model(collection, todo)
            importer = _Importer(collection, source, report, batch_size, on_progress)
            total = sum(p.rows for p in todo)
            for part in todo:
                importer.partition(part, total)
                collection.commit(marks={_mark_key(part): signatures[part.name]})
    report.seconds = time.perf_counter() - started
    return report


# -- export ---------------------------------------------------------------------------------


@dataclass
class ExportReport:
    path: str
    rows: int = 0
    files: int = 0
    kind: str = "image"
    texts: int = 0           # caption vectors written to text_emb
    texts_left_out: int = 0  # text items that are no image's caption: the layout has no place for them
    dtype: str = "float16"
    seconds: float = 0.0
    columns: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {**asdict(self), "seconds": round(self.seconds, 3)}


def _arrow_column(values: list):
    """A column as Arrow infers it; where the values' types clash, JSON text."""
    pa, _ = layout.parquet()
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError):
        return pa.array([v if v is None or isinstance(v, str) else json.dumps(v, ensure_ascii=False) for v in values])


def metadata_table(rows: list[dict], first_columns: list[str]):
    pa, _ = layout.parquet()
    others = sorted({k for row in rows for k in row} - set(first_columns))
    columns = [c for c in first_columns if any(c in row for row in rows)] + others
    return pa.table({c: _arrow_column([row.get(c) for row in rows]) for c in columns})


def _image_row(item, caption_item) -> dict:
    row = dict(item.metadata)
    row["image_path"] = item.metadata.get("image_path") or item.path or item.key
    if caption_item is not None:
        row["caption"] = caption_item.text
    return row


def export_embeddings(collection, out: str | os.PathLike, *, rows_per_file: int = 1_000_000,
                      dtype: str = "float16") -> ExportReport:
    started = time.perf_counter()
    if rows_per_file < 1:
        raise InputError(f"rows per file must be at least 1, got {rows_per_file}")
    if dtype not in ("float16", "float32"):
        raise InputError(f"dtype must be float16 or float32, got {dtype!r}")
    _, pq = layout.parquet()
    out = Path(out).expanduser().resolve()
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"{out} exists and is not an empty folder; export into a new one")
    store = collection.store
    image_ids, _ = store.live_vector_rows("image")
    text_ids, _ = store.live_vector_rows("text")
    kind = "image" if image_ids else "text"
    ids = image_ids or text_ids
    if not ids:
        raise InputError(f"collection {collection.name} holds no items to export")
    captions = _caption_items(store, image_ids) if image_ids else {}
    paired = bool(image_ids) and len(captions) == len(image_ids)
    report = ExportReport(str(out), rows=len(ids), kind=kind, dtype=dtype,
                          texts=len(ids) if paired else 0 if kind == "image" else len(ids))
    report.texts_left_out = len(text_ids) - (len(captions) if paired else 0) if kind == "image" else 0
    count = math.ceil(len(ids) / rows_per_file)
    width = int(math.log10(count)) + 1  # as clip-retrieval pads partition numbers
    partial = out.with_name(f".{out.name}.partial-{os.getpid()}")
    shutil.rmtree(partial, ignore_errors=True)
    try:
        for number in range(count):
            chunk = store.get_items(ids[number * rows_per_file : (number + 1) * rows_per_file])
            items = [chunk[i] for i in ids[number * rows_per_file : (number + 1) * rows_per_file]]
            name = str(number).zfill(width)
            if kind == "image":
                rows = [_image_row(item, captions.get(item.id)) for item in items]
                _write_npy(partial / "img_emb" / f"img_emb_{name}.npy", collection, items, dtype)
                if paired:
                    _write_npy(partial / "text_emb" / f"text_emb_{name}.npy", collection,
                               [captions[item.id] for item in items], dtype)
            else:
                rows = [{**item.metadata, "caption": item.text} for item in items]
                _write_npy(partial / "text_emb" / f"text_emb_{name}.npy", collection, items, dtype)
            table = metadata_table(rows, ["image_path", "caption"] if kind == "image" else ["caption"])
            (partial / "metadata").mkdir(parents=True, exist_ok=True)
            pq.write_table(table, partial / "metadata" / f"metadata_{name}.parquet")
            report.columns = sorted(set(report.columns) | set(table.column_names))
        if out.exists():
            out.rmdir()
        os.rename(partial, out)  # the folder appears whole, or not at all
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    report.files = count
    report.seconds = time.perf_counter() - started
    return report


def _caption_items(store, image_ids: list[int]) -> dict:
    """image item id -> its live caption item (``text:caption:<image key>``), where it has one."""
    found = {}
    for start in range(0, len(image_ids), 10_000):
        images = store.get_items(image_ids[start : start + 10_000])
        texts = store.items_by_key([CAPTION_PREFIX + item.key for item in images.values()])
        for item in images.values():
            text = texts.get(CAPTION_PREFIX + item.key)
            if text is not None and text.kind == "text" and not text.removed:
                found[item.id] = text
    return found


def _write_npy(path: Path, collection, items: list, dtype: str) -> None:
    rows = [item.vector_row for item in items]
    if dtype == "float16":  # exactly as stored: an export read back is the same collection
        vectors = collection.read_vectors(rows, normalized=False)
    else:
        vectors = collection.read_vectors(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.save(path, np.ascontiguousarray(vectors, dtype=dtype))
