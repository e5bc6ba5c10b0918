"""From pairs to batches: the dataset, the resumable batch sampler, and tokenisation.

Data order is a pure function of (seed, epoch, position): the sampler shuffles each epoch
with its own generator and cuts it into global batches of ``batch_size x world`` samples,
of which rank r takes the r-th slice. So 2 processes x B see exactly the samples of
1 process x 2B, and a run resumed at micro-batch m continues with batch m. Each sample's
caption choice and augmentation are seeded by (seed, epoch, index) for the same reason.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from ..models.images import DEFAULT_MAX_PIXELS, decode_bytes
from ..data.pairs import Pair, PairSet
from ..models.hf import tokenize_texts
from ..errors import ImageDecodeError, InputError
from ..models.preprocess import ImagePreprocess
from .augment import TrainTransform
from .long_text import long_and_short
from .signals import loader_worker_init

log = logging.getLogger(__name__)

MAX_CONSECUTIVE_BAD = 8  # more bad samples in a row than this means the data is broken
_SUBSTITUTE_STRIDE = 7919  # a prime: a bad sample's stand-in is far from its batch mates
VOCAB_WORDS = 4000  # whole-word tokens a from-scratch tokenizer gets from the captions


class PairDataset(Dataset):
    """Items are ``(index, epoch)`` keys; a sample is (uint8 HWC pixels, caption, bad reasons).

    A sample that cannot be loaded is replaced by another, deterministically, so that every
    batch is full (all ranks must gather equal shapes); the reasons travel with the batch
    to be counted and logged.
    """

    def __init__(
        self, pairs: list[Pair], transform: TrainTransform, seed: int, max_pixels: int = DEFAULT_MAX_PIXELS,
        long_text: bool = False,
    ):
        self.pairs, self.transform, self.seed, self.max_pixels = pairs, transform, seed, max_pixels
        self.long_text = long_text  # a sample's caption is (long, short), for Long-CLIP

    def __len__(self) -> int:
        return len(self.pairs)

    def __getitem__(self, key: tuple[int, int]) -> tuple[np.ndarray, str | tuple[str, str], list[str]]:
        index, epoch = key
        bad: list[str] = []
        for attempt in range(MAX_CONSECUTIVE_BAD + 1):
            i = (index + attempt * _SUBSTITUTE_STRIDE) % len(self.pairs)
            pair = self.pairs[i]
            try:
                image = decode_bytes(
                    pair.image.read(), max_pixels=self.max_pixels, draft_size=self.transform.preprocess.draft_size
                )
            except ImageDecodeError as e:
                bad.append(f"{pair.image.name}: {e.reason}")
                continue
            rng = np.random.default_rng([self.seed, epoch, i])
            caption = pair.captions[int(rng.integers(len(pair.captions)))]
            if self.long_text:
                caption = long_and_short(pair.captions)
            return self.transform(image, rng), caption, bad
        raise InputError(f"{len(bad)} samples in a row could not be loaded; the last: {bad[-1]}")


class EpochBatchSampler:
    """Micro-batches of ``(index, epoch)`` keys for one rank, from global position ``start``
    up to ``end`` (micro-batches counted from the start of the run)."""

    def __init__(self, n: int, batch_size: int, rank: int, world: int, seed: int, start: int, end: int):
        self.n, self.batch_size, self.rank, self.world, self.seed = n, batch_size, rank, world, seed
        self.start, self.end = start, end
        self.per_epoch = n // (batch_size * world)
        if self.per_epoch == 0:
            raise InputError(
                f"batch size {batch_size} x {world} process(es) = {batch_size * world} is larger than "
                f"the training set ({n} images); lower batch_size"
            )

    def __len__(self) -> int:
        return max(0, self.end - self.start)

    def _order(self, epoch: int) -> np.ndarray:
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        return torch.randperm(self.n, generator=generator).numpy()

    def __iter__(self):
        epoch, order = -1, None
        for position in range(self.start, self.end):
            this_epoch, batch = divmod(position, self.per_epoch)
            if this_epoch != epoch:
                epoch, order = this_epoch, self._order(this_epoch)
            first = (batch * self.world + self.rank) * self.batch_size
            yield [(int(i), epoch) for i in order[first : first + self.batch_size]]


@dataclass
class Batch:
    pixel_values: torch.Tensor
    text: dict[str, torch.Tensor]
    bad: list[str] = field(default_factory=list)

    def to(self, device: torch.device) -> "Batch":
        pin = device.type == "cuda"
        return Batch(
            self.pixel_values.to(device, non_blocking=pin),
            {k: v.to(device, non_blocking=pin) for k, v in self.text.items()},
            self.bad,
        )


@dataclass(frozen=True)
class Collate:
    tokenizer: object
    family: str
    max_length: int
    preprocess: ImagePreprocess

    def __call__(self, samples: list[tuple[np.ndarray, str, list[str]]]) -> Batch:
        pixels = self.preprocess.normalize(np.stack([s[0] for s in samples]))
        texts = [s[1] for s in samples]
        if texts and isinstance(texts[0], tuple):  # Long-CLIP: the long captions, then the short ones
            texts = [long for long, _ in texts] + [short for _, short in texts]
        return Batch(
            torch.from_numpy(pixels),
            tokenize_texts(self.tokenizer, self.family, texts, self.max_length),
            [reason for s in samples for reason in s[2]],
        )


def make_loader(dataset: PairDataset, sampler: EpochBatchSampler, collate: Collate, workers: int, device: torch.device) -> DataLoader:
    return DataLoader(
        dataset,
        batch_sampler=sampler,
        collate_fn=collate,
        num_workers=workers,
        pin_memory=device.type == "cuda",
        prefetch_factor=4 if workers > 0 else None,
        worker_init_fn=loader_worker_init if workers > 0 else None,
    )


def caption_words(pairs: PairSet, limit: int = VOCAB_WORDS) -> list[str]:
    """The training captions' most frequent lower-cased words, in a stable order."""
    counts: Counter = Counter()
    for pair in pairs.pairs:
        for caption in pair.captions:
            counts.update(re.findall(r"[a-z0-9']+", caption.lower()))
    return [word for word, _ in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:limit]]


class BadSamples:
    """Counts bad samples by reason and logs the first few of them."""

    def __init__(self, show: int = 5):
        self.count, self.show = 0, show
        self.reasons: Counter = Counter()

    def add(self, reasons: list[str]) -> None:
        for reason in reasons:
            if self.count < self.show:
                log.warning("skipped bad sample %s", reason)
            self.count += 1
            self.reasons[reason.rsplit(": ", 1)[-1]] += 1
