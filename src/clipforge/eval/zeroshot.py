"""Zero-shot classification metrics, as CLIP_benchmark computes them.

The classifier is ``search.classify.build_classifier``: per class, the renormalised mean of
its L2-normalised prompt embeddings. An image's class scores are cosine similarities; the
softmax CLIP_benchmark applies (after scaling by 100) changes no order, so it is skipped.

- ``acc1`` / ``acc5``: the share of images whose class is among the 1 / 5 best-scored.
  With fewer than 5 classes acc5 is undefined and reported as None (CLIP_benchmark writes
  NaN, which is not valid JSON), never as 0 or 1.
- ``mean_per_class_recall``: the mean, over classes that have images, of the share of that
  class's images predicted as it (scikit-learn's ``balanced_accuracy_score``, which
  CLIP_benchmark calls).

Ties follow ``ranking``: on equal scores the lower class index ranks first.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import InputError
from .ranking import DEFAULT_BLOCK, check_finite, ranks_in_blocks


@dataclass(frozen=True)
class ClassificationRanks:
    true_class_rank: np.ndarray  # (images,) 1-based rank of each image's own class
    predicted: np.ndarray  # (images,) the best-scored class
    labels: np.ndarray
    n_classes: int


def check_labels(labels: np.ndarray, n_classes: int, names: str = "classnames") -> np.ndarray:
    labels = np.asarray(labels, dtype=np.int64)
    if labels.ndim != 1 or len(labels) == 0:
        raise InputError("nothing to evaluate: no labelled images")
    bad = labels[(labels < 0) | (labels >= n_classes)]
    if len(bad):
        raise InputError(f"label {int(bad[0])} has no class name: {names} has {n_classes} names")
    return labels


def classification_ranks(
    image_emb: np.ndarray, classifier: np.ndarray, labels: np.ndarray, block: int = DEFAULT_BLOCK
) -> ClassificationRanks:
    """Rank of the true class, and the top-1 prediction, for every image."""
    n_classes = len(classifier)
    labels = check_labels(labels, n_classes)
    if len(labels) != len(image_emb):
        raise InputError(f"{len(image_emb)} image embeddings but {len(labels)} labels")
    class_ids = np.arange(n_classes)
    ranks = ranks_in_blocks(image_emb, classifier, lambda rows: labels[rows, None] == class_ids[None, :], block)
    check_finite(classifier, "class embeddings")
    predicted = np.concatenate(
        [np.argmax(image_emb[s : s + block] @ classifier.T, axis=1) for s in range(0, len(image_emb), block)]
    )
    return ClassificationRanks(ranks, predicted.astype(np.int64), labels, n_classes)


def classification_metrics(ranks: ClassificationRanks) -> dict[str, float | None]:
    acc5 = float((ranks.true_class_rank <= 5).mean()) if ranks.n_classes >= 5 else None
    present = np.unique(ranks.labels)
    per_class = [float((ranks.predicted[ranks.labels == c] == c).mean()) for c in present]
    return {
        "acc1": float((ranks.true_class_rank <= 1).mean()),
        "acc5": acc5,
        "mean_per_class_recall": float(np.mean(per_class)),
    }
