"""What an evaluation runs over: images (files or tar members) with captions or labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.images import read_bytes
from ..errors import ImageDecodeError


@dataclass(frozen=True)
class ImageRef:
    """One image: a file on disk, or a byte range of a tar shard (``member`` set).

    Tar members are read by offset, so a shard is indexed once and never held in memory.
    """

    path: str
    member: str | None = None
    offset: int = 0
    size: int = 0

    @property
    def name(self) -> str:
        return self.path if self.member is None else f"{self.path}:{self.member}"

    @property
    def is_file(self) -> bool:
        return self.member is None

    def read(self) -> bytes:
        if self.member is None:
            return read_bytes(self.path)
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read(self.size)
        except OSError as e:
            raise ImageDecodeError(f"cannot read shard ({e.strerror or e})", self.name) from None
        if len(data) != self.size:
            raise ImageDecodeError("shard is truncated", self.name)
        return data


@dataclass
class CaptionedImage:
    """An image as a caption file declares it, before its split is chosen and its file found.

    ``source`` says where it was declared ("images[3]", "line 14") so that an error can
    point at the offending entry. ``candidates`` are the file locations to try, in order;
    tar members come with ``ref`` already set.
    """

    source: str
    label: str  # the image as the file names it
    candidates: tuple[Path, ...] = ()
    ref: ImageRef | None = None
    captions: list[str] = field(default_factory=list)
    split: str | None = None


@dataclass
class RetrievalDataset:
    """Images and captions; caption ``i`` describes image ``caption_image[i]``."""

    name: str
    format: str
    split: str | None  # None: the format has no splits and every entry was taken
    images: list[ImageRef]
    captions: list[str]
    caption_image: np.ndarray

    def describe(self) -> str:
        split = f"split '{self.split}'" if self.split else "all entries (no splits)"
        return (
            f"{self.name} ({self.format}), {split}: "
            f"{len(self.images)} images, {len(self.captions)} captions"
        )


@dataclass
class ClassificationDataset:
    """Images with one class each; ``labels[i]`` indexes ``classnames``."""

    name: str
    format: str
    split: str | None
    images: list[ImageRef]
    labels: np.ndarray
    classnames: list[str]
    templates: list[str] | None = None  # shipped with the dataset, converted to '{}' slots

    def describe(self) -> str:
        split = f"split '{self.split}'" if self.split else "all entries (no splits)"
        present = len(np.unique(self.labels)) if len(self.labels) else 0
        return (
            f"{self.name} ({self.format}), {split}: {len(self.images)} images, "
            f"{len(self.classnames)} classes ({present} with images)"
        )
