"""A collection's whole query, the same for every caller (Python, CLI, HTTP): query vectors
in, one page of hits out, after filters, exclusions and a score floor.

Filters select items *before* ranking. When few items match, their stored vectors are
ranked exactly (a few thousand dot products cost less than any index); otherwise the search
index ranks only the matching ids. Either way k hits come back whenever k items match.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from ..errors import InputError, ModelMismatchError
from . import where as where_
from .subsets import Subset

KINDS = ("image", "text")
# Up to this many matching items, an exact scan of their vectors beats any index.
EXACT_SUBSET_MAX = 20_000

Where = str | Iterable[str] | Mapping[str, Any] | None


@dataclass
class Hit:
    id: int
    score: float
    kind: str
    path: str | None
    text: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


class Results(list):
    """The hits of one query (a list), and whether more lie past this page."""

    has_more: bool = False


@dataclass(frozen=True)
class Page:
    k: int = 10
    offset: int = 0
    target: str = "image"
    min_score: float | None = None
    where: Where = None
    exclude: tuple[int, ...] = ()

    def check(self) -> None:
        for name, value, least in (("k", self.k, 1), ("offset", self.offset, 0)):
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < least:
                raise InputError(f"{name} must be a whole number of at least {least}, got {value!r}")
        if self.target not in KINDS:
            raise InputError(f"search target must be one of {', '.join(KINDS)}, got {self.target!r}")
        where_.parse(self.where)  # a misspelt filter is refused before any model is loaded


def check_queries(queries, dim: int, name: str) -> np.ndarray:
    queries = np.atleast_2d(np.asarray(queries, dtype=np.float32))
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ModelMismatchError(f"query vectors are {queries.shape[-1]}-d; collection {name} holds {dim}-d")
    if not np.all(np.isfinite(queries)):  # an index would rank NaN as anything
        raise InputError("a query vector is not finite; nothing can be ranked against it")
    return queries


def search(collection, queries: np.ndarray, page: Page) -> list[Results]:
    """One page of hits for each query vector."""
    page.check()
    queries = check_queries(queries, collection.dim, collection.name)
    conditions = where_.parse(page.where)
    exclude = set(int(i) for i in page.exclude)
    wanted = page.offset + page.k + 1 + len(exclude)  # one more tells whether a next page exists
    if conditions:
        subset = _matching(collection, page.target, conditions)
        if subset.vectors is not None:
            scores, found = _exact(subset.vectors, subset.ids, queries, wanted)
        else:
            scores, found = collection.search_index(page.target).search(queries, wanted, allowed=subset.ids)
    else:
        scores, found = collection.search_index(page.target).search(queries, wanted)
    items = collection.store.get_items({int(i) for i in found.ravel() if i >= 0})
    return [_page(row_scores, row_ids, items, exclude, page) for row_scores, row_ids in zip(scores, found)]


def _matching(collection, kind: str, conditions: list) -> Subset:
    """The live items of ``kind`` that meet ``conditions``, with their vectors when few enough
    to scan exactly; remembered until the collection's next commit."""
    key = (collection.store.generation, kind, tuple((c.key, c.op, c.values) for c in conditions))
    subset = collection.subsets.get(key)
    if subset is None:
        ids, rows = collection.store.matching(kind, conditions)
        subset = Subset(ids, rows, collection.read_vectors(rows) if len(ids) <= EXACT_SUBSET_MAX else None)
        collection.subsets.put(key, subset)
    return subset


def _exact(vectors: np.ndarray, ids: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    k = min(k, len(ids))
    if k == 0:
        return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
    scores = queries @ vectors.T
    top = np.argpartition(-scores, k - 1, axis=1)[:, :k] if k < len(ids) else np.tile(np.arange(len(ids)), (len(queries), 1))
    top_scores = np.take_along_axis(scores, top, axis=1)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return np.take_along_axis(top_scores, order, axis=1), ids[np.take_along_axis(top, order, axis=1)]


def _page(scores, ids, items, exclude: set[int], page: Page) -> Results:
    kept = []
    for score, item_id in zip(scores, ids):
        item = items.get(int(item_id))
        if item is None or item.removed or item.id in exclude:
            continue
        if page.min_score is not None and score < page.min_score:
            break  # ranked best first: the rest scores lower still
        kept.append(Hit(item.id, float(score), item.kind, item.path, item.text, item.metadata))
    results = Results(kept[page.offset : page.offset + page.k])
    results.has_more = len(kept) > page.offset + page.k
    return results
