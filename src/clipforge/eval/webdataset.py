"""CLIP_benchmark's webdataset layout, read straight from the tar shards.

```
root/
  classnames.txt                          one class name per line (zero-shot)
  zeroshot_classification_templates.txt   one template per line; "{c}" marks the class name
  dataset_type.txt                        "retrieval" for caption datasets
  test/nshards.txt, test/0.tar, test/1.tar, ...
```

A sample is the run of tar members that share a key (the member name up to the first dot of
its base name, as webdataset groups them): an image (webp, png, jpg or jpeg) and either
``txt`` (its captions, one per line) or ``cls`` (an integer label). ``root`` may also hold
the shards directly (no splits), or be a single ``.tar``. Shards are read through
``data.shards``, as training reads them: images are located by offset and read only when
encoded.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..models.images import IMAGE_EXTENSIONS
from ..data.shards import iter_members
from ..errors import InputError, NotFoundError
from .dataset import CaptionedImage, ImageRef

# CLIP_benchmark's order of preference, then anything else that decodes.
IMAGE_EXTS = ("webp", "png", "jpg", "jpeg") + tuple(
    sorted(e.lstrip(".") for e in IMAGE_EXTENSIONS if e.lstrip(".") not in ("webp", "png", "jpg", "jpeg"))
)
_TEXT_FIELDS = ("txt", "cls")
DEFAULT_SPLIT = "test"


@dataclass
class Sample:
    key: str
    shard: Path
    images: dict[str, ImageRef] = field(default_factory=dict)
    fields: dict[str, bytes] = field(default_factory=dict)

    @property
    def source(self) -> str:
        return f"{self.shard}:{self.key}"

    def image(self) -> ImageRef:
        for ext in IMAGE_EXTS:
            if ext in self.images:
                return self.images[ext]
        raise InputError(f"sample {self.source} has no image entry ({', '.join(IMAGE_EXTS[:4])})")


def _shards_in(folder: Path) -> list[Path]:
    count_file = folder / "nshards.txt"
    if count_file.is_file():  # CLIP_benchmark reads exactly {0..n-1}.tar
        try:
            count = int(count_file.read_text().strip())
        except ValueError:
            raise InputError(f"{count_file} does not hold a number of shards") from None
        shards = [folder / f"{i}.tar" for i in range(count)]
        for shard in shards:
            if not shard.is_file():
                raise NotFoundError(f"{count_file} says {count} shards, but {shard} is missing")
        return shards
    natural = lambda p: [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]  # noqa: E731
    return sorted(folder.glob("*.tar"), key=natural)


def split_folders(root: Path) -> list[str]:
    return sorted(d.name for d in root.iterdir() if d.is_dir() and any(d.glob("*.tar")))


def is_webdataset(root: Path) -> bool:
    """Shards in ``root`` or in its split folders; metadata files alone do not count, so an
    ImageFolder that keeps a classnames.txt is still an ImageFolder."""
    if root.is_file():
        return root.suffix == ".tar"
    return any(root.glob("*.tar")) or bool(split_folders(root))


def find_shards(root: Path, split: str | None) -> tuple[list[Path], str | None]:
    """The shards to read and the split they are, or None when the layout has no splits."""
    if root.is_file():
        if split:
            raise InputError(f"{root} is a single shard with no splits; leave out --split")
        return [root], None
    splits = split_folders(root)
    if not splits:
        if split:
            raise InputError(f"{root} has no split folders; leave out --split to use every shard in it")
        shards = _shards_in(root)
        if not shards:
            raise InputError(f"{root} holds no .tar shards")
        return shards, None
    chosen = split or DEFAULT_SPLIT
    if chosen not in splits:
        raise InputError(f"split '{chosen}' of {root} is empty (no shards); it has: {', '.join(splits)}")
    return _shards_in(root / chosen), chosen


def iter_samples(shard: Path) -> Iterator[Sample]:
    """Runs of members that share a key, in tar order, as webdataset reads a shard."""
    current: Sample | None = None
    for member in iter_members(str(shard), keep=_TEXT_FIELDS):
        if current is None or current.key != member.key:
            if current is not None:
                yield current
            current = Sample(member.key, shard)
        if member.ext in _TEXT_FIELDS:
            current.fields[member.ext] = member.read()
        elif member.ext in IMAGE_EXTS:
            current.images[member.ext] = ImageRef(str(shard), member.name, member.offset, member.size)
    if current is not None:
        yield current


def read_meta_lines(path: Path) -> list[str] | None:
    """Lines of a metadata file with trailing blank lines dropped; None if it is absent."""
    if not path.is_file():
        return None
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    while lines and not lines[-1]:
        lines.pop()
    return lines


def retrieval_entries(root: Path, split: str | None) -> tuple[str | None, list[CaptionedImage]]:
    shards, chosen = find_shards(root, split)
    entries = []
    for shard in shards:
        for sample in iter_samples(shard):
            text = sample.fields.get("txt", b"").decode("utf-8", errors="replace")
            entries.append(
                CaptionedImage(sample.source, sample.key, ref=sample.image(), captions=text.splitlines(), split=chosen)
            )
    return chosen, entries


def classification_samples(root: Path, split: str | None) -> tuple[str | None, list[tuple[ImageRef, int, str]]]:
    """(split, [(image, label, source)]) for every sample of the chosen split."""
    shards, chosen = find_shards(root, split)
    samples = []
    for shard in shards:
        for sample in iter_samples(shard):
            raw = sample.fields.get("cls")
            if raw is None:
                raise InputError(f"sample {sample.source} has no 'cls' label")
            try:
                label = int(raw.decode("ascii").strip())
            except (UnicodeDecodeError, ValueError):
                raise InputError(f"sample {sample.source}: label {raw[:20]!r} is not an integer") from None
            samples.append((sample.image(), label, sample.source))
    return chosen, samples
