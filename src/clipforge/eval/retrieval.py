"""Image-text retrieval metrics, as CLIP_benchmark computes them and papers report them.

Text to image (CLIP_benchmark's ``image_retrieval``): each caption has one positive image,
and a caption is a hit at K when its image is among the K best-scored images.
Image to text (``text_retrieval``): an image may have several captions, and it is a hit at
K when any of them is among the K best-scored captions. Each query counts 1 or 0, as in
CLIP-style papers; this is not the fraction of an image's captions that were found.

Ranks are 1-based (see ``ranking`` for the tie rule). Scores are computed one block of
queries at a time, so 5K images x 25K captions never needs the full matrix in memory.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .ranking import DEFAULT_BLOCK, ranks_in_blocks

DEFAULT_RECALL_K = (1, 5, 10)


@dataclass(frozen=True)
class RetrievalRanks:
    text_to_image: np.ndarray  # (captions,) rank of each caption's image among all images
    image_to_text: np.ndarray  # (images,) rank of each image's best-ranked caption


def check_pairs(n_images: int, n_captions: int, caption_image: np.ndarray) -> np.ndarray:
    caption_image = np.asarray(caption_image, dtype=np.int64)
    if caption_image.shape != (n_captions,):
        raise InputError(f"caption_image has shape {caption_image.shape}, expected ({n_captions},)")
    if n_images == 0 or n_captions == 0:
        raise InputError(f"nothing to evaluate: {n_images} images, {n_captions} captions")
    if caption_image.min() < 0 or caption_image.max() >= n_images:
        raise InputError(f"caption_image holds indices outside 0..{n_images - 1}")
    counts = np.bincount(caption_image, minlength=n_images)
    if (counts == 0).any():
        raise InputError(f"image {int(np.argmin(counts))} has no captions")
    return caption_image


def retrieval_ranks(
    text_emb: np.ndarray,
    image_emb: np.ndarray,
    caption_image: Sequence[int] | np.ndarray,
    block: int = DEFAULT_BLOCK,
) -> RetrievalRanks:
    """Ranks in both directions. ``caption_image[i]`` is the index of caption i's image."""
    caption_image = check_pairs(len(image_emb), len(text_emb), np.asarray(caption_image))
    if text_emb.shape[1] != image_emb.shape[1]:
        raise InputError(f"text dim {text_emb.shape[1]} differs from image dim {image_emb.shape[1]}")
    image_ids = np.arange(len(image_emb))
    t2i = ranks_in_blocks(text_emb, image_emb, lambda rows: caption_image[rows, None] == image_ids[None, :], block)
    i2t = ranks_in_blocks(image_emb, text_emb, lambda rows: rows[:, None] == caption_image[None, :], block)
    return RetrievalRanks(text_to_image=t2i, image_to_text=i2t)


def retrieval_metrics(ranks: RetrievalRanks, recall_k: Sequence[int] = DEFAULT_RECALL_K) -> dict[str, float]:
    """CLIP_benchmark's metric names, plus clipforge's extras beside them.

    - ``image_retrieval_recall@K``: text to image; ``text_retrieval_recall@K``: image to text;
    - ``mean_recall@k``: the mean of all those recalls; ``rsum``: their sum in percent,
      the RSUM of retrieval papers (600 is perfect with K = 1, 5, 10);
    - ``*_median_rank`` / ``*_mean_rank``: 1-based rank of the first correct result.
    """
    if not recall_k or min(recall_k) < 1:
        raise InputError(f"recall K values must be positive, got {list(recall_k)}")
    metrics: dict[str, float] = {}
    recalls = []
    for k in recall_k:
        for name, ranks_ in (("image", ranks.text_to_image), ("text", ranks.image_to_text)):
            value = float((ranks_ <= k).mean())
            metrics[f"{name}_retrieval_recall@{k}"] = value
            recalls.append(value)
    metrics["mean_recall@k"] = float(np.mean(recalls))
    metrics["rsum"] = float(100 * np.sum(recalls))
    for name, ranks_ in (("image", ranks.text_to_image), ("text", ranks.image_to_text)):
        metrics[f"{name}_retrieval_median_rank"] = float(np.median(ranks_))
        metrics[f"{name}_retrieval_mean_rank"] = float(np.mean(ranks_))
    return metrics
