"""Retrieval metrics on hand-built cases, and against CLIP_benchmark's own computation."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipforge.errors import InputError
from clipforge.eval.retrieval import retrieval_metrics, retrieval_ranks

# With image embeddings set to the identity, each caption's embedding *is* its row of scores
# against the images, so every expected rank below can be read off the numbers.


def test_one_caption_per_image():
    images = np.eye(3, dtype=np.float32)
    texts = np.array([[0.9, 0.1, 0.0], [0.8, 0.5, 0.1], [0.7, 0.6, 0.2]], np.float32)
    ranks = retrieval_ranks(texts, images, [0, 1, 2])
    # caption 0: its image scores best; caption 1: I0 (0.8) beats I1 (0.5); caption 2: two above.
    assert ranks.text_to_image.tolist() == [1, 2, 3]
    # image 0's row over captions is [0.9, 0.8, 0.7]: own caption first. Image 1's is
    # [0.1, 0.5, 0.6]: caption 2 beats its own. Image 2's is [0.0, 0.1, 0.2]: own first.
    assert ranks.image_to_text.tolist() == [1, 2, 1]
    m = retrieval_metrics(ranks, recall_k=(1, 2, 5))
    assert m["image_retrieval_recall@1"] == pytest.approx(1 / 3)
    assert m["image_retrieval_recall@2"] == pytest.approx(2 / 3)
    assert m["image_retrieval_recall@5"] == 1.0
    assert m["text_retrieval_recall@1"] == pytest.approx(2 / 3)
    assert m["text_retrieval_recall@2"] == 1.0
    assert m["image_retrieval_median_rank"] == 2.0
    assert m["image_retrieval_mean_rank"] == 2.0
    assert m["text_retrieval_median_rank"] == 1.0
    assert m["text_retrieval_mean_rank"] == pytest.approx(4 / 3)
    recalls = [1 / 3, 2 / 3, 1.0, 2 / 3, 1.0, 1.0]
    assert m["mean_recall@k"] == pytest.approx(np.mean(recalls))
    assert m["rsum"] == pytest.approx(100 * sum(recalls))


def test_five_captions_and_one_caption():
    """Image 0 has five captions, image 1 has one; image to text hits on *any* caption."""
    images = np.eye(2, dtype=np.float32)
    texts = np.array(
        [
            [0.1, 0.9],  # captions 0-4 belong to image 0
            [0.2, 0.8],
            [0.3, 0.95],
            [0.5, 0.4],  # the only one of image 0's captions that prefers image 0
            [0.05, 0.7],
            [0.6, 0.65],  # caption 5 belongs to image 1
        ],
        np.float32,
    )
    ranks = retrieval_ranks(texts, images, [0, 0, 0, 0, 0, 1])
    assert ranks.text_to_image.tolist() == [2, 2, 2, 1, 2, 1]
    # Image 0 over captions: [0.1, 0.2, 0.3, 0.5, 0.05, 0.6]; its best caption (3, 0.5) has
    # only caption 5 above it -> rank 2. Image 1: [0.9, 0.8, 0.95, 0.4, 0.7, 0.65]; its
    # caption (0.65) has four above it -> rank 5.
    assert ranks.image_to_text.tolist() == [2, 5]
    m = retrieval_metrics(ranks, recall_k=(1, 2, 5))
    assert m["image_retrieval_recall@1"] == pytest.approx(2 / 6)
    assert m["text_retrieval_recall@1"] == 0.0
    assert m["text_retrieval_recall@2"] == 0.5
    assert m["text_retrieval_recall@5"] == 1.0
    assert m["text_retrieval_median_rank"] == 3.5


def test_ties_rank_the_lower_index_first():
    images = np.eye(2, dtype=np.float32)
    texts = np.array([[0.5, 0.5], [0.5, 0.5]], np.float32)
    ranks = retrieval_ranks(texts, images, [1, 0])
    # Caption 0's image is I1, tied with I0, which has the lower index: rank 2.
    assert ranks.text_to_image.tolist() == [2, 1]
    # Image 0's caption is caption 1, tied with caption 0: rank 2. Image 1's is caption 0.
    assert ranks.image_to_text.tolist() == [2, 1]


def test_tie_among_several_positives():
    images = np.eye(2, dtype=np.float32)
    # Image 0 over captions: [0.7, 0.5, 0.7, 0.7]; its captions are 1 and 3. The order is
    # c0, c2, c3 (all 0.7, by index), c1: the first of its captions is third.
    texts = np.array([[0.7, 0.9], [0.5, 0.0], [0.7, 0.8], [0.7, 0.0]], np.float32)
    ranks = retrieval_ranks(texts, images, [1, 0, 1, 0])
    assert ranks.image_to_text[0] == 3


def _brute_force_ranks(texts, images, caption_image):
    """Sort every row in full with the documented order: score down, then index up."""
    scores = texts @ images.T

    def first(rows, relevant):
        out = []
        for row, rel in zip(rows, relevant):
            order = np.lexsort((np.arange(len(row)), -row))
            out.append(int(np.flatnonzero(rel[order])[0]) + 1)
        return out

    owner = np.asarray(caption_image)
    t2i = first(scores, owner[:, None] == np.arange(len(images))[None, :])
    i2t = first(scores.T, np.arange(len(images))[:, None] == owner[None, :])
    return t2i, i2t


@pytest.mark.parametrize("block", [1, 3, 7, 64, 100_000])
def test_blocks_equal_the_full_matrix(block):
    rng = np.random.default_rng(3)
    # Values from {-1, 0, 1} make many exact ties, so the tie rule is exercised too.
    images = rng.integers(-1, 2, (20, 4)).astype(np.float32)
    owner = np.concatenate([np.repeat(np.arange(10), 5), np.arange(10, 20)])  # 5 captions, then 1
    texts = rng.integers(-1, 2, (len(owner), 4)).astype(np.float32)
    ranks = retrieval_ranks(texts, images, owner, block=block)
    t2i, i2t = _brute_force_ranks(texts, images, owner)
    assert ranks.text_to_image.tolist() == t2i
    assert ranks.image_to_text.tolist() == i2t


# --- CLIP_benchmark's computation, re-implemented from clip_benchmark/metrics/zeroshot_retrieval.py


def _cb_recall_at_k(scores, positive_pairs, k):
    nb_texts, nb_images = scores.shape
    topk_indices = torch.topk(scores, k, dim=1)[1]
    nb_positive = positive_pairs.sum(dim=1)
    topk_indices_onehot = torch.nn.functional.one_hot(topk_indices, num_classes=nb_images)
    positive_pairs_reshaped = positive_pairs.view(nb_texts, 1, nb_images)
    nb_true_positive = (topk_indices_onehot * positive_pairs_reshaped).sum(dim=(1, 2))
    return nb_true_positive / nb_positive


def _cb_batchify(func, x, y, batch_size, **kwargs):
    starts = range(0, len(x), batch_size)
    return torch.cat([func(x[s : s + batch_size], y[s : s + batch_size], **kwargs) for s in starts])


def _cb_hits(texts_emb, images_emb, texts_image_index, k, batch_size=16):
    scores = texts_emb @ images_emb.t()
    positive_pairs = torch.zeros_like(scores, dtype=bool)
    positive_pairs[torch.arange(len(scores)), texts_image_index] = True
    image_hits = _cb_batchify(_cb_recall_at_k, scores, positive_pairs, batch_size, k=k) > 0
    text_hits = _cb_batchify(_cb_recall_at_k, scores.T, positive_pairs.T, batch_size, k=k) > 0
    return image_hits, text_hits


def test_equals_clip_benchmark_on_random_embeddings():
    rng = np.random.default_rng(2)
    n_images, dim = 60, 32
    counts = rng.choice([1, 5, 6], size=n_images)  # COCO has images with 6 and 7 captions
    owner = np.repeat(np.arange(n_images), counts)
    # Entries are multiples of 1/1024 in [-0.5, 0.5]: every dot product is exact in float32
    # whatever the summation order, so numpy in blocks and torch in one matmul produce the
    # same scores bit for bit, and any difference in hits would be a difference in method.
    quantise = lambda x: (np.round(np.clip(x, -0.5, 0.5) * 1024) / 1024).astype(np.float32)  # noqa: E731
    images = quantise(rng.uniform(-0.5, 0.5, (n_images, dim)))
    texts = quantise(0.2 * images[owner] + rng.uniform(-0.3, 0.3, (len(owner), dim)))
    scores = texts @ images.T
    # torch.topk's order among equal scores is unspecified: this seed has no exact ties.
    for row in (scores, scores.T):
        assert np.diff(np.sort(row, axis=1), axis=1).min() > 0

    ranks = retrieval_ranks(texts, images, owner, block=7)
    metrics = retrieval_metrics(ranks, recall_k=(1, 5, 10))
    t_emb, i_emb, index = torch.from_numpy(texts), torch.from_numpy(images), torch.from_numpy(owner)
    for k in (1, 5, 10):
        image_hits, text_hits = _cb_hits(t_emb, i_emb, index, k)
        assert (ranks.text_to_image <= k).tolist() == image_hits.tolist()
        assert (ranks.image_to_text <= k).tolist() == text_hits.tolist()
        assert metrics[f"image_retrieval_recall@{k}"] == pytest.approx(image_hits.float().mean().item(), abs=1e-6)
        assert metrics[f"text_retrieval_recall@{k}"] == pytest.approx(text_hits.float().mean().item(), abs=1e-6)
    assert 0 < metrics["image_retrieval_recall@1"] < 1 and 0 < metrics["text_retrieval_recall@1"] < 1


def test_rejects_inconsistent_input():
    images = np.eye(3, dtype=np.float32)
    texts = np.eye(3, dtype=np.float32)
    with pytest.raises(InputError, match="image 2 has no captions"):
        retrieval_ranks(texts[:2], images, [0, 1])
    with pytest.raises(InputError, match="outside"):
        retrieval_ranks(texts, images, [0, 1, 3])
    with pytest.raises(InputError, match="positive"):
        retrieval_metrics(retrieval_ranks(texts, images, [0, 1, 2]), recall_k=(0,))
