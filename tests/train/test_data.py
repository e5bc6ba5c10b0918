"""Batches: the data order, per-rank slices, caption sampling and augmentation."""

from __future__ import annotations

import numpy as np
from PIL import Image

from clipforge.data.pairs import load_pairs
from clipforge.models.preprocess import ImagePreprocess
from clipforge.train.augment import TrainTransform
from clipforge.train.data import EpochBatchSampler, PairDataset

PRE = ImagePreprocess("shortest_edge", (32, 32), (32, 32), (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


def _keys(sampler) -> list[list[tuple[int, int]]]:
    return list(sampler)


def test_two_ranks_split_exactly_the_batches_of_one_and_resume_mid_epoch():
    one = _keys(EpochBatchSampler(50, 8, rank=0, world=1, seed=3, start=0, end=12))
    r0 = _keys(EpochBatchSampler(50, 4, rank=0, world=2, seed=3, start=0, end=12))
    r1 = _keys(EpochBatchSampler(50, 4, rank=1, world=2, seed=3, start=0, end=12))
    assert [a + b for a, b in zip(r0, r1)] == one  # rank slices of the same global batches
    assert one[5][0][1] == 0 and one[6][0][1] == 1  # 50 // 8 = 6 batches an epoch, then epoch 1
    epoch0 = [i for batch in one[:6] for i, _ in batch]
    assert len(set(epoch0)) == 48  # no repeats inside an epoch
    assert [i for i, _ in one[6]] != [i for i, _ in one[0]]  # reshuffled
    assert _keys(EpochBatchSampler(50, 8, 0, 1, seed=3, start=4, end=12)) == one[4:]


def test_captions_are_sampled_per_epoch_and_augmentation_is_reproducible(tmp_path):
    Image.new("RGB", (40, 30), (200, 30, 30)).save(tmp_path / "a.png")
    (tmp_path / "a.txt").write_text("\n".join(f"caption {k}" for k in range(5)))
    pairs = load_pairs(tmp_path).pairs
    dataset = PairDataset(pairs, TrainTransform(PRE, crop_scale=0.5, flip=True, jitter=0.2), seed=0)
    seen = {dataset[(0, epoch)][1] for epoch in range(30)}
    assert len(seen) == 5  # every caption gets its turn
    first, again = dataset[(0, 7)], dataset[(0, 7)]
    assert first[1] == again[1] and np.array_equal(first[0], again[0])
    assert first[0].shape == (32, 32, 3) and first[0].dtype == np.uint8
    assert not np.array_equal(dataset[(0, 8)][0], first[0])  # another epoch, another crop/jitter


def test_without_augmentation_training_pixels_equal_inference_pixels(tmp_path):
    Image.new("RGB", (40, 30), (10, 120, 240)).save(tmp_path / "b.png")
    (tmp_path / "b.txt").write_text("blue")
    dataset = PairDataset(load_pairs(tmp_path).pairs, TrainTransform(PRE, crop_scale=1.0, jitter=0.0), seed=0)
    expected = PRE.resize_crop(Image.open(tmp_path / "b.png").convert("RGB"))
    assert np.array_equal(dataset[(0, 0)][0], expected)
