"""The rank of the first relevant candidate, one block of queries at a time.

The order of candidates is: higher score first; on equal scores, the lower index first.
That rule makes every metric deterministic. CLIP_benchmark ranks with ``torch.topk``,
whose order among equal scores is unspecified; where no scores tie the two agree exactly,
and with real-valued embeddings exact ties are rare (duplicate images or captions).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..errors import ClipforgeError, InputError

# Queries per block. Memory is about block x candidates x 6 bytes (scores plus masks):
# 256 x 25,000 captions is under 40 MB, where the full 5K x 25K matrix would be 500 MB.
DEFAULT_BLOCK = 256


def first_relevant_rank(scores: np.ndarray, relevant: np.ndarray) -> np.ndarray:
    """1-based rank of the best-ranked relevant candidate of each row.

    ``scores`` is (queries, candidates); ``relevant`` a boolean mask of the same shape with
    at least one True per row.
    """
    masked = np.where(relevant, scores, -np.inf)
    best = masked.max(axis=1, keepdims=True)
    # The lowest-index relevant candidate with the best relevant score is the first in order.
    first = np.argmax(masked == best, axis=1)[:, None]
    above = (scores > best).sum(axis=1)
    tied_before = ((scores == best) & (np.arange(scores.shape[1])[None, :] < first)).sum(axis=1)
    return (above + tied_before + 1).astype(np.int64)


def ranks_in_blocks(
    queries: np.ndarray,
    candidates: np.ndarray,
    relevant_for: Callable[[np.ndarray], np.ndarray],
    block: int = DEFAULT_BLOCK,
) -> np.ndarray:
    """``first_relevant_rank`` of ``queries @ candidates.T``, never holding more than
    ``block`` rows of it. ``relevant_for(rows)`` gives the relevance mask of those rows."""
    if block < 1:
        raise InputError(f"block size must be at least 1, got {block}")
    check_finite(queries, "query embeddings")
    check_finite(candidates, "candidate embeddings")
    out = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), block):
        rows = np.arange(start, min(start + block, len(queries)))
        scores = queries[rows] @ candidates.T
        out[rows] = first_relevant_rank(scores, relevant_for(rows))
    return out


def check_finite(array: np.ndarray, what: str) -> None:
    # A NaN compares false with everything and would silently rank first.
    if not np.isfinite(array).all():
        raise ClipforgeError(f"{what} contain NaN or infinite values; try --precision fp32")
