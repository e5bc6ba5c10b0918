"""What an evaluation runs over: images (files or tar members) with captions or labels."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.pairs import ImageLocation


# One image: a file, or a byte range of a tar shard read by offset, so that a shard is indexed
# once and never held in memory. Evaluation and training locate images the same way.
ImageRef = ImageLocation


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
