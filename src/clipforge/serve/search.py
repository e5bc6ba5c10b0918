"""Search as the server does it: a query vector, then one page of filtered results.

The query vector comes from the library's ``build_query`` (text, image, or image plus an
instruction) run on the serving encoder, so text goes through the batcher. "More like this"
uses the item's stored vector and needs no model at all; with an instruction added it
re-reads the item's image and composes like any image query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError, NotFoundError
from ..index.collection import Hit
from ..search.queries import build_query, load_query_image
from .deadline import check_deadline
from .files import read_item_file
from .service import Served
from .settings import Limits


@dataclass
class Query:
    text: str | None = None
    image: bytes | None = None
    item_id: int | None = None
    text_weight: float = 0.5


def query_vector(served: Served, encoder, query: Query, limits: Limits) -> np.ndarray:
    """One L2-normalised query vector (blocking: run it in a worker thread)."""
    image = query.image
    if query.item_id is not None:
        if query.text is None:
            return served.read(lambda c: c.vectors_for_ids([query.item_id]))[0]
        item = served.read(lambda c: c.get(query.item_id))
        if item.kind != "image":  # a 404, as for the item's image file: the item has none
            raise NotFoundError(f"item {query.item_id} is a text, with no image to add an instruction to")
        image, _ = read_item_file(served.collection, query.item_id)
    picture = None
    if image is not None:
        picture = load_query_image(image, encoder.preprocess.draft_size, max_pixels=limits.max_image_pixels)
    return build_query(encoder, text=query.text, image=picture, text_weight=query.text_weight)


def unit_vector(values, name: str) -> np.ndarray:
    """``values`` scaled to length 1, as float32; refused when it has no direction.

    Scaled by its largest magnitude first: the squares of float32-range values overflow,
    or underflow to zero, before the norm is taken.
    """
    vector = np.asarray(values, dtype=np.float64)
    largest = float(np.abs(vector).max(initial=0.0))
    if not np.isfinite(largest):
        raise InputError(f"{name} holds a value that is not a finite number")
    if largest == 0.0:
        raise InputError(f"{name} is all zeros: it has no direction to search in")
    vector = vector / largest
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def matches(metadata: dict[str, Any], filters: dict[str, Any]) -> bool:
    """Every filter holds: the value equals the wanted one, or is one of a list of them."""
    for key, wanted in filters.items():
        value = metadata.get(key)
        if isinstance(wanted, list) and value not in wanted:
            return False
        if not isinstance(wanted, list) and value != wanted:
            return False
    return True


@dataclass
class Page:
    hits: list[Hit]
    has_more: bool


def search_page(served: Served, vector: np.ndarray, *, k: int, offset: int = 0, target: str = "image",
                min_score: float | None = None, filters: dict[str, Any] | None = None,
                exclude: int | None = None) -> Page:
    """Results ``offset`` to ``offset + k``, after filters; one more is fetched to know if a next page exists."""
    if not np.all(np.isfinite(vector)):  # FAISS would rank NaN as anything
        raise InputError("the query vector is not finite; nothing can be ranked against it")
    wanted = offset + k + 1
    # Filters and the excluded query item drop results after the index has ranked them, so
    # ask the index for more, and more again while a page is still short.
    fetch = wanted * 4 if filters else wanted + (exclude is not None)
    def ranked(k: int) -> list[Hit]:
        return served.read(lambda c: c.search_vectors(vector[None], k=k, target=target, min_score=min_score))[0]

    while True:
        check_deadline()  # each pass ranks four times more than the last
        hits = ranked(fetch)
        kept = [h for h in hits if h.id != exclude and (not filters or matches(h.metadata, filters))]
        if len(kept) >= wanted or len(hits) < fetch:  # enough, or the index has nothing more
            return Page(kept[offset : offset + k], len(kept) > offset + k)
        fetch *= 4
