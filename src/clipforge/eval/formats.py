"""Finding and reading evaluation datasets on disk.

Retrieval (``load_retrieval_dataset``), by what ``data`` is:
- ``*.json``: Karpathy split JSON, COCO caption annotations, or a list of
  ``{"image", "caption"}`` (see ``caption_files``);
- ``*.csv`` / ``*.tsv`` / ``*.txt`` / ``*.token``: a caption table (Flickr ``captions.txt``,
  ``results.csv``, ``Flickr8k.token.txt``, or clipforge's pair table);
- ``*.parquet``: a pair table (needs pyarrow);
- ``*.tar``, or a folder in CLIP_benchmark's webdataset layout (see ``webdataset``);
- a folder holding ``pairs.parquet`` / ``pairs.csv`` / ``pairs.tsv``;
- any other folder: images with sidecar ``.txt`` or ``.json`` captions.

clipforge's pair table has the columns ``image`` (a path relative to the table, or to
``images``), ``caption`` (one caption per row; an image may have many rows) and optionally
``split``.

Zero-shot (``load_classification_dataset``): a webdataset folder or shard, or an ImageFolder
(one subfolder per class, class index = sorted folder name, as torchvision does).

The split: Karpathy JSON, pair tables with a ``split`` column and webdataset folders default
to ``test``; formats without splits take every entry, and asking them for a split is an
error rather than a silent no-op. An empty split is an error that lists the splits there are.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np

from ..models.images import is_image_path
from ..errors import InputError, NotFoundError
from . import webdataset as wds
from .caption_files import read_caption_json, read_parquet_table, read_sidecar_folder, read_text_table
from .dataset import CaptionedImage, ClassificationDataset, ImageRef, RetrievalDataset
from .templates import from_clip_benchmark

DEFAULT_SPLIT = "test"
PAIR_TABLES = ("pairs.parquet", "pairs.csv", "pairs.tsv")
TEXT_TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".token")
_SPLIT_NAMES = {"train", "val", "valid", "validation", "test", "restval"}


def _existing(path: str | Path, what: str = "dataset") -> Path:
    path = Path(path).expanduser()
    if not path.exists():
        raise NotFoundError(f"{what} {path} does not exist")
    return path


def _read_entries(
    data: Path, root: Path, split: str | None, name: str
) -> tuple[str, list[CaptionedImage], str | None]:
    """(format, entries, split already applied by the reader or None)."""
    if data.is_dir():
        if wds.is_webdataset(data):
            chosen, entries = wds.retrieval_entries(data, split)
            return "webdataset", entries, chosen
        return "sidecar-folder", read_sidecar_folder(data), None
    suffix = data.suffix.lower()
    if suffix == ".json":
        try:
            doc = json.loads(data.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise InputError(f"cannot read {data} as JSON: {e}") from None
        return (*read_caption_json(doc, root, name), None)
    if suffix == ".tar":
        chosen, entries = wds.retrieval_entries(data, split)
        return "webdataset", entries, chosen
    if suffix == ".parquet":
        return (*read_parquet_table(data, root, name), None)
    if suffix in TEXT_TABLE_SUFFIXES:
        return (*read_text_table(data, root, name), None)
    raise InputError(f"{data}: unknown dataset format (use .json, .csv, .tsv, .txt, .parquet, .tar or a folder)")


def select_split(entries: list, split: str | None, name: str) -> tuple[list, str | None]:
    """Entries of the requested split (default ``test``) where the entries carry splits."""
    present = Counter(e.split for e in entries if e.split is not None)
    if not present:
        if split:
            raise InputError(f"{name} has no splits; leave out --split to evaluate all {len(entries)} entries")
        return entries, None
    chosen = split or DEFAULT_SPLIT
    picked = [e for e in entries if e.split == chosen]
    if not picked:
        have = ", ".join(f"{s} ({n})" for s, n in sorted(present.items()))
        raise InputError(f"split '{chosen}' of {name} is empty; it has: {have}")
    return picked, chosen


def _resolve(entry: CaptionedImage, name: str) -> ImageRef:
    if entry.ref is not None:
        return entry.ref
    for path in entry.candidates:
        if path.is_file():
            return ImageRef(str(path))
    tried = " or ".join(str(p) for p in entry.candidates)
    raise NotFoundError(f"{name}: {entry.source} refers to missing image {entry.label} (looked for {tried})")


def _assemble(entries: list[CaptionedImage], name: str, fmt: str, split: str | None) -> RetrievalDataset:
    if not entries:
        where = f"split '{split}' of {name}" if split else name
        raise InputError(f"{where} is empty: no images with captions")
    images, captions, owner = [], [], []
    for entry in entries:
        if not entry.captions:
            raise InputError(f"{name}: image {entry.label} ({entry.source}) has no captions")
        if any(not c.strip() for c in entry.captions):
            raise InputError(f"{name}: image {entry.label} ({entry.source}) has an empty caption")
        images.append(_resolve(entry, name))
        captions.extend(c.strip() for c in entry.captions)
        owner.extend([len(images) - 1] * len(entry.captions))
    return RetrievalDataset(name, fmt, split, images, captions, np.asarray(owner, dtype=np.int64))


def load_retrieval_dataset(
    data: str | Path, images: str | Path | None = None, split: str | None = None
) -> RetrievalDataset:
    """Read a caption dataset; ``images`` is the root that relative image paths start from
    (default: the folder of ``data``)."""
    data = _existing(data)
    root = _existing(images, "images folder") if images else (data if data.is_dir() else data.parent)
    name = data.name
    table = next((data / t for t in PAIR_TABLES if (data / t).is_file()), None) if data.is_dir() else None
    if table is not None:
        data, name = table, f"{data.name}/{table.name}"
    fmt, entries, chosen = _read_entries(data, root, split, name)
    if fmt != "webdataset":  # the webdataset reader picks its split folder itself
        entries, chosen = select_split(entries, split, name)
    return _assemble(entries, name, fmt, chosen)


def read_classnames(path: str | Path) -> list[str]:
    lines = wds.read_meta_lines(_existing(path, "classnames file")) or []
    if not lines:
        raise InputError(f"classnames file {path} is empty")
    for number, line in enumerate(lines, 1):
        if not line:  # a skipped blank line would shift every later class index
            raise InputError(f"classnames file {path}: line {number} is blank; give one name per line")
    return lines


def _image_folder(data: Path, split: str | None) -> tuple[list[str], list[ImageRef], list[int]]:
    base = data / split if split else data
    if not base.is_dir():
        have = ", ".join(sorted(d.name for d in data.iterdir() if d.is_dir()))
        raise InputError(f"split '{split}' of {data} is empty: no folder {base} (folders: {have})")
    classes = sorted(d.name for d in base.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not split and classes and set(classes) <= _SPLIT_NAMES:
        raise InputError(f"{data} holds split folders ({', '.join(classes)}), not classes; choose one with --split")
    refs, labels = [], []
    for label, cls in enumerate(classes):
        files = sorted(p for p in (base / cls).rglob("*") if p.is_file() and is_image_path(p))
        if not files:
            raise InputError(f"{data}: class folder {cls} has no images")
        refs.extend(ImageRef(str(p)) for p in files)
        labels.extend([label] * len(files))
    if not classes:
        raise InputError(f"{base} is empty: no class folders")
    return classes, refs, labels


def load_classification_dataset(
    data: str | Path, split: str | None = None, classnames: str | Path | None = None
) -> ClassificationDataset:
    """Read an ImageFolder or a webdataset; ``classnames`` (one per line) overrides the
    dataset's own names and must have exactly as many names as the dataset has classes."""
    data = _existing(data)
    override = read_classnames(classnames) if classnames else None
    if wds.is_webdataset(data):
        chosen, samples = wds.classification_samples(data, split)
        shipped_file = data / "classnames.txt"
        shipped = read_classnames(shipped_file) if data.is_dir() and shipped_file.is_file() else None
        names = _webdataset_classnames(shipped, override, data)
        templates = _shipped_templates(data / "zeroshot_classification_templates.txt") if data.is_dir() else None
        refs, labels = [s[0] for s in samples], np.asarray([s[1] for s in samples], dtype=np.int64)
        _check_labels_named(samples, len(names), "classnames file" if override else f"{data}/classnames.txt")
        return ClassificationDataset(data.name, "webdataset", chosen, refs, labels, names, templates)
    if not data.is_dir():
        raise InputError(f"{data}: zero-shot data must be an ImageFolder directory or a webdataset")
    folders, refs, labels = _image_folder(data, split)
    if override is not None and len(override) != len(folders):
        raise InputError(
            f"classnames file {classnames} has {len(override)} names but {data} has {len(folders)} class folders"
        )
    return ClassificationDataset(
        data.name, "imagefolder", split, refs, np.asarray(labels, dtype=np.int64), override or folders
    )


def _shipped_templates(path: Path) -> list[str] | None:
    lines = wds.read_meta_lines(path)
    return from_clip_benchmark([ln for ln in lines if ln], str(path)) if lines else None


def _webdataset_classnames(shipped: list[str] | None, override: list[str] | None, data: Path) -> list[str]:
    if override is not None and shipped is not None and len(override) != len(shipped):
        raise InputError(
            f"classnames file has {len(override)} names but {data}/classnames.txt has {len(shipped)}"
        )
    names = override or shipped
    if not names:
        raise InputError(f"{data} has no classnames.txt; give class names with --classnames FILE")
    return names


def _check_labels_named(samples: list[tuple[ImageRef, int, str]], n_names: int, names: str) -> None:
    if not samples:
        raise InputError("the chosen split is empty: no samples")
    for _, label, source in samples:
        if not 0 <= label < n_names:
            raise InputError(f"sample {source} has label {label}, but {names} has {n_names} names")
