"""A query that cannot be answered is refused before the model loads: loading it is the slow
part of a search, and a typo should cost nothing."""

from __future__ import annotations

import pytest

from clipforge import Collection
from clipforge.errors import InputError, NotFoundError


@pytest.fixture
def reopened(tmp_path, tiny_clip_spec):
    Collection.create(tmp_path / "coll", model=tiny_clip_spec).close()
    with Collection.open(tmp_path / "coll") as coll:
        yield coll


@pytest.mark.parametrize("query, error, message", [
    ({"text": "a cat", "where": "=2023"}, InputError, "=2023"),
    ({"text": "a cat", "where": ["camera~Pixel", "no operator here"]}, InputError, "no operator here"),
    ({"image": "missing.jpg"}, NotFoundError, "missing.jpg does not exist"),
    ({"image": "missing.jpg", "text": "at night"}, NotFoundError, "missing.jpg does not exist"),
    ({"text": "a cat", "target": "video"}, InputError, "search target"),
])
def test_a_bad_query_is_refused_before_the_model_loads(reopened, tmp_path, query, error, message):
    if "image" in query:
        query = {**query, "image": tmp_path / query["image"]}
    with pytest.raises(error, match=message.replace(">", ".").replace("~", ".")):
        reopened.search(**query)
    assert reopened._encoder is None, "the model was loaded for a query refused anyway"
