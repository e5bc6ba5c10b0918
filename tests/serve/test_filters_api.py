"""`POST /search` with `where` expressions, over real HTTP, against brute force and the library."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from photo_library import build_library, selective_and_broad, top_k

from clipforge.errors import InputError
from clipforge.index import where
from clipforge.index.collection import Collection
from clipforge.serve.settings import Limits

from .conftest import start

jsonschema_rs = pytest.importorskip("jsonschema_rs")
_PATTERN_VALIDATOR = jsonschema_rs.validator_for({"type": "string", "pattern": where.EXPRESSION})


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip_spec):
    root = tmp_path_factory.mktemp("http-library")
    photos = build_library(root / "photos")
    with Collection.create(root / "coll", model=tiny_clip_spec) as coll:
        coll.add_images([root / "photos"], workers=0)
    coll = Collection.open(root / "coll")
    stored = np.stack([coll.vectors_for_paths([p.path])[str(p.path.resolve())] for p in photos])
    server = start(root / "coll")
    with httpx.Client(base_url=server.url, timeout=30) as client:
        yield client, coll, photos, stored, root / "photos"
    server.stop()
    coll.close()


def _id(coll, photo) -> int:
    key = str(photo.path.resolve())
    return coll.store.items_by_key([key])[key].id


@pytest.mark.parametrize("case", range(10))
def test_where_gives_the_top_k_of_the_matching_photos(library, case):
    client, coll, photos, stored, root = library
    conditions = selective_and_broad(root)[case]
    like = photos[11]  # "more like this": its stored vector, itself left out
    ranked = [p for p in top_k(photos, stored, stored[11], conditions, len(photos)) if p != str(like.path.resolve())]
    for k, offset in ((5, 0), (3, 4)):
        answer = client.post("/search", json={"item_id": _id(coll, like), "where": conditions, "k": k, "offset": offset})
        assert answer.status_code == 200, answer.text
        assert [h["path"] for h in answer.json()["results"]] == ranked[offset : offset + k], conditions
        assert answer.json()["has_more"] == (len(ranked) > offset + k)


def test_where_and_filters_combine_in_json_and_in_a_form(library):
    client, coll, photos, _, _ = library
    conditions = ["taken>=2022-06-01"]
    expected = [h.path for h in coll.search("a photo", k=8, where=[*conditions, {"camera": ["Google Pixel 7", "Apple iPhone 15"]}])]
    assert expected, "the filters must leave something to find"
    answer = client.post("/search", json={"text": "a photo", "k": 8, "where": conditions,
                                          "filters": {"camera": ["Google Pixel 7", "Apple iPhone 15"]}}).json()
    assert [h["path"] for h in answer["results"]] == expected
    picture = photos[4].path.read_bytes()
    expected = [h.path for h in coll.search(image=picture, k=6, where=["camera~pixel", "lat exists"])]
    form = client.post("/search", data={"k": "6", "where": ["camera~pixel", "lat exists"]},
                       files={"image": ("q.jpg", picture, "image/jpeg")})
    assert form.status_code == 200, form.text
    assert [h["path"] for h in form.json()["results"]] == expected
    assert all("Pixel" in h["metadata"]["camera"] and "lat" in h["metadata"] for h in form.json()["results"])


def test_a_bad_expression_is_a_422_naming_it(library):
    client, *_ = library
    answer = client.post("/search", json={"text": "a photo", "where": ["camera~Pixel", "taken"]})
    assert answer.status_code == 422
    [error] = answer.json()["detail"]
    assert error["loc"] == ["body", "where", 1] and "cannot read the filter 'taken'" in error["msg"]
    for body in ({"text": "a", "where": "camera~Pixel"}, {"text": "a", "where": [7]},
                 {"text": "a", "where": ["x=1"] * (Limits().max_filters + 1)},
                 {"text": "a", "where": ["album in a,,b"]}, {"text": "a", "where": ["x exists now"]}):
        refused = client.post("/search", json=body)
        assert refused.status_code == 422 and refused.json()["detail"][0]["loc"][:2] == ["body", "where"], body


def test_the_schema_states_the_grammar_and_the_limits(library):
    client, *_ = library
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for name in ("SearchRequest", "SearchRequestForm"):
        field = schemas[name]["properties"]["where"]
        assert field["maxItems"] == Limits().max_filters
        assert field["items"]["pattern"] == where.EXPRESSION
        assert field["items"]["maxLength"] == Limits().max_text_chars
        assert "taken>=2023-06-01" in field["description"]


# Characters that matter to the grammar, and white space that Python and ECMA-262 see differently.
_PIECES = ["a", "Z", "é", "7", "-", ".", "*", ",", "=", "<", ">", "!", "~", " ", "\t", "\n", "\u00a0", "\u2028",
           "\u0085", "\u001c", "\u200b", "\ufeff", "in", "IN", "not", "exists", "Missing"]


@settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.from_regex(where.EXPRESSION, fullmatch=True), st.lists(st.sampled_from(_PIECES), max_size=8).map("".join)))
def test_the_schema_and_the_server_agree_on_every_expression(text):
    """What the schema's pattern allows (as JSON Schema validators read it) is what the server reads."""
    schema_says = _PATTERN_VALIDATOR.is_valid(text)
    try:
        conditions = where.parse(text)
    except InputError:
        conditions = None
    assert schema_says == (conditions is not None), repr(text)
    if conditions:
        [condition] = conditions
        assert condition.key and condition.key == condition.key.strip()
        assert all(value and value == value.strip() for value in condition.values)
