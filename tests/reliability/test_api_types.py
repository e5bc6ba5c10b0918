"""JSON values of the wrong type are refused with a 422 naming the field, not coerced.

JSON has one integer type and one boolean type. A body that sends ``true`` for an id (read
laxly, item 1) or ``"3"`` for a count is a client bug that coercion would hide. A form is
text by nature, so its fields are still read as the numbers they spell.
"""

from __future__ import annotations

import base64

import httpx
import pytest
from api_server import served
from serve.conftest import photo_bytes


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("types"), tiny_clip_spec) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            yield http


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    return base64.b64encode(photo_bytes(tmp_path_factory.mktemp("image"))).decode()


def refused(response, loc: tuple) -> bool:
    assert response.status_code == 422, response.text
    return any(tuple(e["loc"])[: len(loc)] == loc for e in response.json()["detail"])


@pytest.mark.parametrize("path, body, loc", [
    ("/metadata", {"ids": [True]}, ("body", "ids", 0)),
    ("/metadata", {"ids": [1, False]}, ("body", "ids", 1)),
    ("/metadata", {"ids": ["3"]}, ("body", "ids", 0)),
    ("/metadata", {"ids": [3.5]}, ("body", "ids", 0)),
    ("/search", {"item_id": True}, ("body", "item_id")),
    ("/search", {"item_id": "3"}, ("body", "item_id")),
    ("/search", {"text": "x", "k": True}, ("body", "k")),
    ("/search", {"text": "x", "k": "5"}, ("body", "k")),
    ("/search", {"text": "x", "offset": False}, ("body", "offset")),
    ("/search", {"text": "x", "text_weight": True}, ("body", "text_weight")),
    ("/search", {"text": "x", "min_score": "0.5"}, ("body", "min_score")),
    ("/knn-service", {"text": "x", "num_images": True}, ("body", "num_images")),
    ("/knn-service", {"text": "x", "num_result_ids": "5"}, ("body", "num_result_ids")),
])
def test_json_values_of_the_wrong_type_are_refused(client, path, body, loc):
    assert refused(client.post(path, json=body), loc)


def test_booleans_are_not_numbers_nor_numbers_booleans(client, image):
    dim = client.get("/collections").json()[0]["dim"]
    vector = client.post("/knn-service", json={"embedding_input": [True] + [1.0] * (dim - 1)})
    assert refused(vector, ("body", "embedding_input", 0))
    response = client.post("/classify", json={"image": image, "labels": ["cat"], "text_memory": 1})
    assert refused(response, ("body", "text_memory"))


def test_form_fields_are_text_and_still_read_as_numbers(client, tmp_path):
    found = client.post("/search", json={"text": "a photo", "k": 1}).json()["results"][0]["id"]
    form = client.post("/search", files={"image": ("q.jpg", photo_bytes(tmp_path, seed=4), "image/jpeg")},
                       data={"k": "2", "offset": "1", "text_weight": "0.25", "text": "red"})
    assert form.status_code == 200 and form.json()["k"] == 2 and form.json()["offset"] == 1
    by_item = client.post("/search", data={"item_id": str(found), "text": "red", "k": "3"},
                          headers={"content-type": "application/x-www-form-urlencoded"})
    assert by_item.status_code == 200, by_item.text
    assert client.post("/metadata", json={"ids": [found]}).json()[0]["id"] == found
