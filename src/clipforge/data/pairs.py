"""Image-text pair datasets: the format clipforge writes, and every source training reads.

The pair-dataset format
-----------------------
A dataset is a folder holding a table ``pairs.csv`` (UTF-8, with a header row) of columns:

- ``image``: the image file, relative to the folder, with forward slashes;
- ``caption``: one caption of that image;
- ``split``: ``train``, ``val`` or ``test``;
- ``label`` (optional): the image's class name, for zero-shot classification;
- ``lang`` (optional): the caption's language (default ``en``).

An image with several captions has several rows, one per caption. Next to the table an
optional ``dataset.json`` holds ``name``, ``description``, ``source`` and ``counts``.

Other sources, read for training
--------------------------------
- A folder of images with sidecar captions: ``cat.jpg`` with ``cat.txt`` (one caption per
  line) or ``cat.json`` (``{"caption": "..."}`` or ``{"captions": ["...", ...]}``).
- A CSV, TSV or Parquet table with an image column and a caption column (names are
  configurable). An image is a path relative to the table, an absolute path, or an http(s)
  URL; URLs are fetched when the sample is loaded, and a failed fetch is a bad sample.
- WebDataset tar shards: a path, a brace pattern (``shards-{000..009}.tar``), a folder of
  ``.tar`` files, or ``pipe:<command>`` writing a tar to stdout. Members are grouped by key
  (the member name up to the first dot of its file name); a group holds an image
  (``jpg``/``jpeg``/``png``/``webp``) and a ``txt`` (one caption per line) or ``json``
  caption entry. Local shards are indexed once and read by offset; a ``pipe:`` shard is read
  into memory when it is loaded (see ``shards``).

Rows without an image or with an empty caption are skipped and counted by reason in
``PairSet.skipped``. A source that does not exist, a table without the named columns and an
empty shard are errors.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import InputError, NotFoundError
from ..models.images import is_image_path, read_bytes
from .shards import expand_braces  # noqa: F401  (part of this module's interface)
from .shards import Member, expand_shards, iter_members, read_member
from .sources import MAX_URL_BYTES, URL_TIMEOUT_S, fetch_url

log = logging.getLogger(__name__)

TABLE_NAME = "pairs.csv"
SPLITS = ("train", "val", "test")
SHARD_IMAGE_EXTENSIONS = frozenset({"jpg", "jpeg", "png", "webp"})


@dataclass(frozen=True)
class ImageLocation:
    """Where an image's bytes are: a file, an http(s) URL, or a member of a tar shard."""

    path: str  # a file path, a URL, or the shard (a path or a pipe: command)
    member: str | None = None
    offset: int = 0
    size: int = 0
    data: bytes | None = field(default=None, repr=False)  # held for members of pipe: shards

    @property
    def name(self) -> str:
        return self.path if self.member is None else f"{self.path}:{self.member}"

    @property
    def is_file(self) -> bool:
        """A file on disk, which a collection can have indexed by its path."""
        return self.member is None and not self.path.startswith(("http://", "https://"))

    def read(self) -> bytes:
        """The encoded image. Raises ImageDecodeError with a short reason."""
        if self.data is not None:
            return self.data
        if self.member is not None:
            return read_member(self.path, self.offset, self.size, self.member)
        if self.path.startswith(("http://", "https://")):
            return fetch_url(self.path, MAX_URL_BYTES, URL_TIMEOUT_S)
        return read_bytes(self.path)


@dataclass(frozen=True)
class Pair:
    """One image and all of its captions."""

    image: ImageLocation
    captions: tuple[str, ...]
    split: str | None = None
    label: str | None = None


@dataclass
class PairSet:
    pairs: list[Pair]
    source: str
    has_splits: bool = False
    skipped: Counter = field(default_factory=Counter)  # reason -> rows skipped

    def __len__(self) -> int:
        return len(self.pairs)

    @property
    def n_captions(self) -> int:
        return sum(len(p.captions) for p in self.pairs)


def load_pairs(
    source: str | os.PathLike,
    split: str | None = None,
    *,
    image_column: str = "image",
    caption_column: str = "caption",
    lang: str | None = None,
) -> PairSet:
    """Read a pair dataset or any source listed in this module's docstring.

    ``split`` keeps the images of one split where the source has splits; a source without a
    split column yields all its images and ``has_splits=False``. ``lang`` keeps only a
    table's captions in that language (rows without a ``lang`` are ``en``).
    """
    text = os.fspath(source)
    if text.startswith("pipe:") or "{" in text:
        result = _read_shards(expand_shards(text), text)
    else:
        path = Path(text).expanduser()
        if not path.exists():
            raise NotFoundError(f"data source {text} does not exist")
        result = _read_path(path, image_column, caption_column, lang)
    if split is not None and result.has_splits:
        result.pairs = [p for p in result.pairs if p.split == split]
    if result.skipped:
        log.warning("%s: skipped %s", text, ", ".join(f"{n} ({why})" for why, n in result.skipped.items()))
    return result


def _read_path(path: Path, image_column: str, caption_column: str, lang: str | None) -> PairSet:
    if path.is_dir():
        if (path / TABLE_NAME).is_file():
            return read_table(path / TABLE_NAME, image_column, caption_column, lang)
        shards = sorted(str(p) for p in path.glob("*.tar"))
        return _read_shards(shards, str(path)) if shards else read_sidecar_folder(path)
    suffix = path.suffix.lower()
    if suffix == ".tar":
        return _read_shards([str(path)], str(path))
    if suffix in (".csv", ".tsv", ".tab", ".parquet", ".pq"):
        return read_table(path, image_column, caption_column, lang)
    raise InputError(f"{path}: unknown data source type (expected a folder, .csv, .tsv, .parquet or .tar)")


# --- tables -------------------------------------------------------------------------------


def read_parquet(path: Path) -> tuple[list[str], list[dict]]:
    """(column names, rows) of a Parquet file; pyarrow is needed only here, so it is optional."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise InputError("reading Parquet needs pyarrow: pip install pyarrow") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises its own error types for damaged files
        raise InputError(f"{path}: cannot read Parquet ({str(e).splitlines()[0]})") from None
    return list(table.column_names), table.to_pylist()


def read_table_rows(path: Path) -> tuple[list[str], list[dict]]:
    """(column names, rows) of a CSV, TSV or Parquet table."""
    if path.suffix.lower() in (".parquet", ".pq"):
        return read_parquet(path)
    delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    try:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f, delimiter=delimiter)
            return list(reader.fieldnames or []), list(reader)
    except UnicodeDecodeError:
        raise InputError(f"{path}: not UTF-8 text") from None
    except csv.Error as e:
        raise InputError(f"{path}: malformed table ({e})") from None


def read_table(
    path: Path, image_column: str = "image", caption_column: str = "caption", lang: str | None = None
) -> PairSet:
    """A CSV/TSV/Parquet table; rows of the same image are merged into one Pair."""
    columns, rows = read_table_rows(path)
    missing = [c for c in (image_column, caption_column) if c not in columns]
    if missing:
        raise InputError(
            f"{path}: no column {', '.join(repr(c) for c in missing)} "
            f"(columns: {', '.join(columns) or 'none'}); set the image/caption column names"
        )
    root = path.parent
    has_splits = "split" in columns
    grouped: dict[tuple[str, str | None], dict] = {}
    skipped: Counter = Counter()
    for row in rows:
        image, caption = _cell(row.get(image_column)), _cell(row.get(caption_column))
        if not image:
            skipped["no image"] += 1
            continue
        if not caption:
            skipped["empty caption"] += 1
            continue
        if lang is not None and (_cell(row.get("lang")) or "en") != lang:
            continue
        split = (_cell(row.get("split")) or "train") if has_splits else None
        entry = grouped.setdefault((image, split), {"captions": [], "label": _cell(row.get("label")) or None})
        entry["captions"].append(caption)
    pairs = [
        Pair(ImageLocation(_resolve(root, image)), tuple(entry["captions"]), split, entry["label"])
        for (image, split), entry in grouped.items()
    ]
    return PairSet(pairs, str(path), has_splits, skipped)


def _cell(value) -> str:
    # CSV gives "" for a missing value, Parquet gives None; floats are pandas-style NaN nulls.
    if value is None or (isinstance(value, float) and value != value):
        return ""
    return str(value).strip()


def _resolve(root: Path, image: str) -> str:
    if image.startswith(("http://", "https://")):
        return image
    return str(root / image) if not os.path.isabs(image) else image


# --- folders with sidecar captions -------------------------------------------------------


def sidecar_captions(image: Path) -> list[str]:
    """The captions of ``image``'s ``.txt`` or ``.json`` sidecar; none where it has neither."""
    txt, js = image.with_suffix(".txt"), image.with_suffix(".json")
    if txt.is_file():
        return _caption_lines(txt.read_text(encoding="utf-8", errors="replace"))
    if js.is_file():
        try:
            return _json_captions(js.read_bytes())
        except ValueError:
            return []
    return []


def read_sidecar_folder(root: Path) -> PairSet:
    pairs, skipped = [], Counter()
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p)):
        captions = sidecar_captions(path)
        if captions:
            pairs.append(Pair(ImageLocation(str(path)), tuple(captions)))
        else:
            skipped["no caption"] += 1
    if not pairs:
        raise InputError(f"{root}: no {TABLE_NAME} and no images with .txt/.json captions")
    return PairSet(pairs, str(root), False, skipped)


def _caption_lines(text: str) -> list[str]:
    return [line.strip() for line in text.splitlines() if line.strip()]


def _json_captions(data: bytes) -> list[str]:
    """``{"caption": ...}`` or ``{"captions": [...]}``; raises ValueError otherwise."""
    value = json.loads(data)
    if not isinstance(value, dict):
        raise ValueError("not a JSON object")
    captions = value.get("captions", [value.get("caption")])
    if isinstance(captions, str):
        captions = [captions]
    return [str(c).strip() for c in captions or [] if c is not None and str(c).strip()]


# --- WebDataset shards -------------------------------------------------------------------


def _read_shards(shards: list[str], source: str) -> PairSet:
    pairs, skipped = [], Counter()
    for shard in shards:
        samples: dict[str, dict[str, Member]] = {}
        for member in iter_members(shard, keep=("txt", "json")):
            samples.setdefault(member.key, {})[member.ext] = member
        for entries in samples.values():
            pair = _shard_pair(entries)
            if isinstance(pair, str):
                skipped[pair] += 1
            else:
                pairs.append(pair)
    return PairSet(pairs, source, False, skipped)


def _shard_pair(entries: dict[str, Member]) -> Pair | str:
    """The Pair a sample's entries make, or the reason it is skipped."""
    image_ext = next((e for e in entries if e in SHARD_IMAGE_EXTENSIONS), None)
    if image_ext is None:
        return "no image"
    captions: list[str] = []
    if "txt" in entries:
        captions = _caption_lines(entries["txt"].read().decode("utf-8", errors="replace"))
    elif "json" in entries:
        try:
            captions = _json_captions(entries["json"].read())
        except ValueError:
            return "bad caption json"
    if not captions:
        return "empty caption"
    image = entries[image_ext]
    return Pair(ImageLocation(image.shard, image.name, image.offset, image.size, image.data), tuple(captions))
