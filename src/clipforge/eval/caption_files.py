"""Readers for caption files: each returns the images it declares, captions grouped by image.

Supported:
- Karpathy split JSON (``dataset_coco.json``, ``dataset_flickr30k.json``):
  ``{"images": [{"filepath", "filename", "split", "sentences": [{"raw"}]}]}``;
- COCO caption annotations (``captions_val2014.json``):
  ``{"images": [{"id", "file_name"}], "annotations": [{"image_id", "caption"}]}``;
- a JSON list of ``{"image": path, "caption": str | [str]}`` (``coco_karpathy_test.json``,
  ``flickr30k_test.json`` as BLIP and CLIP_benchmark ship them);
- text tables, one caption per row: CSV/TSV with a header naming an image column and a
  caption column (Flickr8k ``captions.txt``, clipforge ``pairs.csv``), Flickr30k
  ``results.csv`` (``image_name| comment_number| comment``), and ``Flickr8k.token.txt``
  (``image.jpg#0<TAB>caption``); Parquet with the same columns (needs pyarrow);
- a folder of images with sidecar captions (``.txt``, one caption per line, or ``.json``), as
  ``data.pairs`` reads them for training.

Relative image paths are resolved against the images root; where a path has folders
(``val2014/x.jpg``) the bare file name under the root is tried next, so the root may be
either the dataset folder or the image folder itself.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from ..models.images import is_image_path
from ..data.pairs import read_parquet, sidecar_captions
from ..errors import InputError, NotFoundError
from .dataset import CaptionedImage

IMAGE_COLUMNS = ("image", "image_name", "filename", "file_name", "filepath", "path")
CAPTION_COLUMNS = ("caption", "comment", "text", "sentence", "raw")
SPLIT_COLUMN = "split"

Row = tuple[str, str, str | None, str | None]  # (source, image, caption, split)


def candidates(root: Path, image: str, folder: str = "") -> tuple[Path, ...]:
    rel = Path(folder) / image
    if rel.is_absolute():
        return (rel,)
    first = root / rel
    return (first, root / rel.name) if rel.name != str(rel) else (first,)


def read_caption_json(doc: object, root: Path, name: str) -> tuple[str, list[CaptionedImage]]:
    """(format name, images) for any of the three JSON layouts."""
    if isinstance(doc, list):
        return "caption-list", _group_rows(_list_rows(doc, name), root, name)
    if isinstance(doc, dict) and isinstance(doc.get("images"), list):
        if "annotations" in doc:
            return "coco-captions", _coco_images(doc, root, name)
        return "karpathy", _karpathy_images(doc["images"], root, name)
    raise InputError(
        f"{name}: not a caption file clipforge knows (expected Karpathy 'images' with 'sentences', "
        f"COCO 'images' + 'annotations', or a list of {{'image', 'caption'}})"
    )


def _karpathy_images(items: list, root: Path, name: str) -> list[CaptionedImage]:
    out = []
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("filename"):
            raise InputError(f"{name}: images[{i}] has no 'filename'")
        folder = item.get("filepath") or ""
        captions = [_sentence_text(s) for s in item.get("sentences") or []]
        label = str(Path(folder) / item["filename"])
        out.append(
            CaptionedImage(
                f"images[{i}]", label, candidates(root, item["filename"], folder), captions=captions,
                split=item.get("split"),
            )
        )
    return out


def _sentence_text(sentence: object) -> str:
    if isinstance(sentence, dict):
        raw = sentence.get("raw")
        return str(raw) if raw is not None else " ".join(sentence.get("tokens") or [])
    return str(sentence)


def _coco_images(doc: dict, root: Path, name: str) -> list[CaptionedImage]:
    by_id: dict[object, CaptionedImage] = {}
    for i, item in enumerate(doc["images"]):
        if not isinstance(item, dict) or "id" not in item or not item.get("file_name"):
            raise InputError(f"{name}: images[{i}] needs 'id' and 'file_name'")
        by_id[item["id"]] = CaptionedImage(
            f"images[{i}] (id {item['id']})", item["file_name"], candidates(root, item["file_name"])
        )
    for j, ann in enumerate(doc.get("annotations") or []):
        entry = by_id.get(ann.get("image_id")) if isinstance(ann, dict) else None
        if entry is None:
            image_id = ann.get("image_id") if isinstance(ann, dict) else None
            raise NotFoundError(f"{name}: annotations[{j}] refers to missing image id {image_id!r}")
        entry.captions.append(str(ann.get("caption", "")))
    return list(by_id.values())


def _list_rows(items: list, name: str) -> Iterator[Row]:
    for i, item in enumerate(items):
        if not isinstance(item, dict) or not item.get("image"):
            raise InputError(f"{name}: entry [{i}] has no 'image'")
        caption = item.get("caption")
        captions = [caption] if isinstance(caption, str) else list(caption or [])
        if not captions:
            yield f"entry [{i}]", str(item["image"]), None, item.get(SPLIT_COLUMN)
        for text in captions:
            yield f"entry [{i}]", str(item["image"]), str(text), item.get(SPLIT_COLUMN)


def read_text_table(path: Path, root: Path, name: str) -> tuple[str, list[CaptionedImage]]:
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    lines = text.splitlines()
    first = next((ln for ln in lines if ln.strip()), "")
    if "|" in first:
        return "flickr-pipe", _group_rows(_pipe_rows(lines, name), root, name)
    if re.match(r"^[^\t]+#\d+\t", first):
        return "flickr-token", _group_rows(_token_rows(lines, name), root, name)
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    return "table", _group_rows(_csv_rows(text, delimiter, name), root, name)


def _find_column(header: Iterable[str], wanted: tuple[str, ...]) -> str | None:
    by_lower = {str(h).strip().lower(): h for h in header}
    return next((by_lower[w] for w in wanted if w in by_lower), None)


def _columns(header: list[str], name: str) -> tuple[str, str, str | None]:
    image, caption = _find_column(header, IMAGE_COLUMNS), _find_column(header, CAPTION_COLUMNS)
    if image is None or caption is None:
        raise InputError(
            f"{name}: header {header} needs an image column ({', '.join(IMAGE_COLUMNS)}) "
            f"and a caption column ({', '.join(CAPTION_COLUMNS)})"
        )
    return image, caption, _find_column(header, (SPLIT_COLUMN,))


def _csv_rows(text: str, delimiter: str, name: str) -> Iterator[Row]:
    lines = text.splitlines()
    header = next(csv.reader(lines[:1], delimiter=delimiter), [])
    image, caption, split = _columns(header, name)
    if header == [image, caption]:
        yield from _image_caption_rows(lines, delimiter, name)
        return
    reader = csv.DictReader(io.StringIO(text), delimiter=delimiter)
    for row in reader:
        if None in row or None in row.values():  # a field too many or too few: never guess
            raise InputError(
                f"{name}: line {reader.line_num} does not have the header's {len(header)} fields; "
                f"quote captions that contain '{delimiter}'"
            )
        yield f"line {reader.line_num}", row[image].strip(), row[caption], _split_value(row, split)


def _image_caption_rows(lines: list[str], delimiter: str, name: str) -> Iterator[Row]:
    """``image,caption`` lines. CLIP_benchmark's Flickr files leave commas in captions
    unquoted; Kaggle's ``captions.txt`` quotes such captions. Splitting at the first
    delimiter and unquoting a fully quoted rest reads both."""
    for number, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        image, sep, caption = line.partition(delimiter)
        if not sep:
            raise InputError(f"{name}: line {number} has no {delimiter!r} between image and caption: {line!r}")
        quoted = caption.strip()
        if len(quoted) >= 2 and quoted[0] == quoted[-1] == '"':
            fields = next(csv.reader([quoted], delimiter=delimiter))
            caption = fields[0] if len(fields) == 1 else caption
        yield f"line {number}", image.strip(), caption, None


def _split_value(row: dict, column: str | None) -> str | None:
    value = row.get(column) if column else None
    return str(value).strip() if value not in (None, "") else None


# Flickr30k's results.csv from Kaggle has one row with the second '|' missing:
# "2199200615.jpg| 4 A dog runs across the grass ." The comment number is still readable.
_MISSING_PIPE = re.compile(r"^\s*\d+\s+(\S.*)$")


def _pipe_rows(lines: list[str], name: str) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        if not line.strip() or (number == 1 and "image" in line.lower()):
            continue
        fields = [f.strip() for f in line.split("|", 2)]
        if len(fields) == 2 and _MISSING_PIPE.match(fields[1]):
            fields = [fields[0], "", _MISSING_PIPE.match(fields[1]).group(1)]
        if len(fields) != 3:
            raise InputError(f"{name}: line {number} is not 'image| comment_number| comment': {line!r}")
        yield f"line {number}", fields[0], fields[2], None


def _token_rows(lines: list[str], name: str) -> Iterator[Row]:
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        if not sep:
            raise InputError(f"{name}: line {number} is not 'image#n<TAB>caption': {line!r}")
        yield f"line {number}", key.rsplit("#", 1)[0].strip(), caption, None


def read_parquet_table(path: Path, root: Path, name: str) -> tuple[str, list[CaptionedImage]]:
    header, rows = read_parquet(path)
    image, caption, split = _columns(header, name)
    table = (
        (f"row {i}", str(r[image] or "").strip(), "" if r[caption] is None else str(r[caption]), _split_value(r, split))
        for i, r in enumerate(rows)
    )
    return "table", _group_rows(table, root, name)


def _group_rows(rows: Iterable[Row], root: Path, name: str) -> list[CaptionedImage]:
    """One entry per image, in order of first appearance; a caption of None only declares it."""
    groups: dict[str, CaptionedImage] = {}
    for source, image, caption, split in rows:
        if not image:
            raise InputError(f"{name}: {source} has no image")
        entry = groups.get(image)
        if entry is None:
            entry = groups[image] = CaptionedImage(source, image, candidates(root, image), split=split)
        elif entry.split != split:
            raise InputError(
                f"{name}: {source} puts image {image} in split {split!r}, {entry.source} in {entry.split!r}"
            )
        if caption is not None:
            if not caption.strip():
                raise InputError(f"{name}: {source}: empty caption for image {image}")
            entry.captions.append(caption)
    return list(groups.values())


def read_sidecar_folder(root: Path) -> list[CaptionedImage]:
    """Every image under ``root`` with the captions of its sidecar, read as training reads them."""
    out = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_image_path(p)):
        rel = str(path.relative_to(root))
        source = f"sidecar {path.with_suffix('.txt').name}"
        out.append(CaptionedImage(source, rel, (path,), captions=sidecar_captions(path)))
    return out
