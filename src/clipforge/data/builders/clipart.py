"""The clip-art pair dataset: Open Clip Art Library PNGs with their cleaned SVG metadata.

Each picture gets up to three captions (column ``kind``):

- ``title``: what the picture is ("Old car", "bass guitar"), from the SVG's Dublin Core
  title when that names the picture, else from the file name with the author's name and
  numbering removed. Titles that name a collection (used by three or more unrelated
  pictures, or by 25 files), credits, boilerplate and placeholders never become captions.
- ``description``: the SVG description when it says more than the title, without URLs,
  e-mail addresses, credits or blurbs shared by a whole series; cut at 300 characters.
- ``tags``: the title followed by the cleaned tags and the package's folder names
  ("Old car — automobile, voiture, transportation, vehicles"). Tags are joined to the title
  rather than kept as a bare list because bare lists repeat across hundreds of pictures
  ("stars, shapes, geometry"), which makes them useless for telling pictures apart in
  retrieval and false negatives for a contrastive loss; with the title in front the caption
  stays specific and still carries the category words people search with.

``label`` is the top-level folder ("animals", "food"; none for "unsorted" and "special").
Symbolic links (the same file listed in a second folder) are skipped. Pictures whose file
names differ only in numbers ("star_73pt03step", "star_49pt04step") are near-copies: they
share one split, and at most ``max_per_group`` of them are kept so that one series cannot
swamp the dataset. Images are composited on white, cropped to the drawing (many were
exported with their whole page) and downscaled to ``max_size``; small opaque PNGs that need
no cropping are hard-linked (or copied) unchanged.
"""

from __future__ import annotations

import os
import re
import shutil
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from PIL import Image, ImageOps

from ...errors import ImageDecodeError, InputError
from ...models.images import DEFAULT_MAX_PIXELS, decode_image
from .clipart_meta import SvgMeta, read_svg_meta
from .clipart_text import (
    clean_tags, clean_text, folder_words, humanize, pick_description, pick_title, title_from_meta,
)
from .common import (
    BASE_COLUMNS, BuildResult, Caption, PairDatasetWriter, ProgressFn, existing_result,
    join_keywords, package_version, require_path, save_png, split_for, stable_order,
)

NAME = "clipart"
DEFAULT_PNG_DIR = Path("/usr/share/openclipart/png")
DEFAULT_SVG_DIR = Path("/usr/share/openclipart/svg")
MIN_SIDE = 24  # below this the "pictures" are 3x2-pixel flags and similar debris
_INK_LEVEL = 8  # grey levels below white that count as drawing, not page
# A title or description shared by this many groups, or this many files, names a series.
COLLECTION_GROUPS = 3
COLLECTION_FILES = 25
UNLABELLED = frozenset({"unsorted", "special"})
_PACKAGES = ("openclipart-png", "openclipart-svg")
COLUMNS = {
    "image": "PNG path relative to the dataset folder",
    "caption": "title, description, or title followed by tags",
    "split": "train, val or test; fixed by the group key",
    "label": "top-level folder of the package, e.g. 'animals' (empty for unsorted/special)",
    "lang": "language of the metadata (dc:language)",
    "kind": "title, description or tags",
    "title": "the cleaned title",
    "category": "folder path in the package, e.g. 'animals/birds'",
    "source": "PNG path in openclipart-png",
    "group": "split key: the file name as words without numbers",
}


@dataclass
class ClipartConfig:
    """What to build; the paths default to where the Debian packages install their files."""

    max_size: int = 256
    limit: int | None = None  # a fixed pseudo-random sample of N pictures
    max_per_group: int = 20  # 0 keeps every near-copy
    max_pixels: int = DEFAULT_MAX_PIXELS
    png_dir: Path = DEFAULT_PNG_DIR
    svg_dir: Path = DEFAULT_SVG_DIR

    def check(self) -> None:
        require_path(self.png_dir, "Open Clip Art PNG folder", "openclipart-png")
        require_path(self.svg_dir, "Open Clip Art SVG folder (for titles and tags)", "openclipart-svg")
        if self.max_size < MIN_SIDE:
            raise InputError(f"max_size must be at least {MIN_SIDE} pixels")


@dataclass(frozen=True)
class ClipartItem:
    relative: PurePosixPath  # under the PNG folder
    meta: SvgMeta
    group: str


def scan(config: ClipartConfig, skip: Callable[[str], None]) -> list[ClipartItem]:
    """Every real PNG file with its SVG metadata, sorted by path; ``skip(reason)`` for the rest."""
    items = []
    png_dir, svg_dir = Path(config.png_dir), Path(config.svg_dir)
    for path in sorted(png_dir.rglob("*")):
        if path.is_symlink():
            skip("listed twice (symbolic link)")
        elif path.is_file() and path.suffix.lower() == ".png":
            relative = PurePosixPath(path.relative_to(png_dir).as_posix())
            meta = read_svg_meta(svg_dir / relative.with_suffix(".svg"))
            name = humanize(relative.stem, meta.creator)
            items.append(ClipartItem(relative, meta, re.sub(r"[\d\s]+", " ", name).strip() or relative.stem))
    return items


def shared_texts(items: Iterable[ClipartItem], field: str) -> set[str]:
    """Titles or descriptions (casefolded) that name a series rather than one picture."""
    groups: dict[str, set[str]] = defaultdict(set)
    files: Counter[str] = Counter()
    for item in items:
        if field == "title":
            text = title_from_meta(item.meta.title, item.meta.creator) or ""
        else:
            text = clean_text(item.meta.description)
        if text:
            groups[text.casefold()].add(item.group)
            files[text.casefold()] += 1
    return {text for text, members in groups.items()
            if len(members) >= COLLECTION_GROUPS or files[text] >= COLLECTION_FILES}


def select(items: list[ClipartItem], config: ClipartConfig, skip: Callable[[str], None]) -> list[ClipartItem]:
    """Cap each group of near-copies, then take the ``limit`` sample; both fixed across runs."""
    kept: list[ClipartItem] = []
    per_group: dict[str, int] = defaultdict(int)
    for item in sorted(items, key=lambda i: stable_order(str(i.relative))):
        per_group[item.group] += 1
        if config.max_per_group and per_group[item.group] > config.max_per_group:
            skip(f"near-copy beyond {config.max_per_group} per group")
        else:
            kept.append(item)
    return kept[: config.limit] if config.limit is not None else kept


def item_captions(item: ClipartItem, collections: set[str], shared: set[str]) -> tuple[str | None, list[Caption]]:
    """The cleaned title and the captions of one picture."""
    meta, lang = item.meta, item.meta.language
    folders = list(item.relative.parent.parts)
    title = pick_title(meta.title, item.relative.stem, meta.creator, collections)
    description = pick_description(meta.description, title, meta.creator, shared)
    captions = []
    if title:
        captions.append(Caption(title, lang, "title"))
    if description:
        captions.append(Caption(description, lang, "description"))
    if title or description:
        tags = join_keywords(title or "", clean_tags(meta.tags, meta.creator, folder_words(folders)))
        if tags:
            captions.append(Caption(tags, lang, "tags"))
    return title, captions


def write_image(source: Path, target: Path, config: ClipartConfig) -> None:
    """The picture on white, cropped to its content, at most ``max_size`` pixels a side.

    Raises ImageDecodeError for files that cannot be used. Small opaque PNGs that need no
    cropping are hard-linked (or copied) unchanged.
    """
    image = decode_image(source, max_pixels=config.max_pixels)
    cropped = crop_to_content(image)
    if cropped is None:
        raise ImageDecodeError("blank image", str(source))
    if max(cropped.size) < MIN_SIDE:
        raise ImageDecodeError(f"too small (under {MIN_SIDE} pixels)", str(source))
    if cropped.size == image.size and max(image.size) <= config.max_size and _is_opaque_png(source):
        _link_or_copy(source, target)
        return
    cropped.thumbnail((config.max_size, config.max_size), Image.Resampling.LANCZOS)
    save_png(cropped, target)


def crop_to_content(image: Image.Image) -> Image.Image | None:
    """``image`` cut to what is not white, plus a small margin; None if it is all white.

    Many PNGs of the package were exported with the whole drawing page, so the picture sits
    small in a corner of a white A4 sheet; uncropped, it shrinks to a few pixels at 256.
    """
    ink = ImageOps.invert(image.convert("L")).point(lambda v: 255 if v > _INK_LEVEL else 0)
    box = ink.getbbox()
    if box is None:
        return None
    margin = max(box[2] - box[0], box[3] - box[1]) // 32
    box = (max(box[0] - margin, 0), max(box[1] - margin, 0),
           min(box[2] + margin, image.width), min(box[3] + margin, image.height))
    return image if box == (0, 0, *image.size) else image.crop(box)


def _is_opaque_png(path: Path) -> bool:
    with Image.open(path) as probe:
        return probe.format == "PNG" and probe.mode in ("RGB", "L") and "transparency" not in probe.info


def _link_or_copy(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:  # another filesystem, or links not allowed: a copy is as good
        shutil.copyfile(source, target)


def build_clipart(out: Path, config: ClipartConfig | None = None, *, force: bool = False,
                  progress: ProgressFn | None = None) -> BuildResult:
    """Build the clip-art dataset at ``out``; an existing complete one is kept unless ``force``."""
    config = config or ClipartConfig()
    config.check()
    existing = existing_result(out, NAME, force)
    if existing is not None:
        return existing
    with PairDatasetWriter(out, NAME, [c for c in COLUMNS if c not in BASE_COLUMNS]) as writer:
        items = scan(config, writer.skip)
        collections, shared = shared_texts(items, "title"), shared_texts(items, "description")
        chosen = select(items, config, writer.skip)
        for done, item in enumerate(chosen, start=1):
            _add_item(writer, item, config, collections, shared)
            if progress:
                progress(done, len(chosen))
        return writer.commit(
            description="Open Clip Art Library 0.18 pictures (Debian openclipart-png) captioned with "
                        "cleaned titles, descriptions and tags from the SVG metadata (openclipart-svg); "
                        "label is the package's top-level folder.",
            sources={p: package_version(p) for p in _PACKAGES},
            params={"max_size": config.max_size, "limit": config.limit, "max_per_group": config.max_per_group,
                    "max_pixels": config.max_pixels, "min_side": MIN_SIDE,
                    "collection_groups": COLLECTION_GROUPS, "collection_files": COLLECTION_FILES},
            columns=COLUMNS, force=force,
        )


def _add_item(writer: PairDatasetWriter, item: ClipartItem, config: ClipartConfig,
              collections: set[str], shared: set[str]) -> None:
    title, captions = item_captions(item, collections, shared)
    if not captions:
        writer.skip("no usable caption")
        return
    try:
        write_image(Path(config.png_dir) / item.relative, writer.image_path(str(item.relative)), config)
    except ImageDecodeError as e:
        writer.skip(e.reason.split(" (")[0])
        return
    writer.add_image(
        str(item.relative), split_for(item.group), captions, label=_label(item.relative),
        title=title or "", category=str(item.relative.parent), source=str(item.relative), group=item.group,
    )


def _label(relative: PurePosixPath) -> str:
    top = relative.parts[0] if len(relative.parts) > 1 else ""
    return "" if top in UNLABELLED else top.replace("_", " ")
