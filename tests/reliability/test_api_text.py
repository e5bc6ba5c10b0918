"""Texts that used to take the server down with a 500: a 422 now, naming what is wrong.

A JSON string may spell half of a UTF-16 surrogate pair (``"\\udc80"``), which is no
character: the tokenizer failed on it. A prompt template with a brace besides its ``{}``
slot broke ``str.format`` (``"{x} {}"`` is a KeyError, ``"{} {"`` a ValueError).
"""

from __future__ import annotations

import base64

import httpx
import pytest
from api_server import served
from serve.conftest import photo_bytes


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("text"), tiny_clip_spec) as server:
        # A connection per request: a 500 used to drop the connection it came on.
        with httpx.Client(base_url=server.url, timeout=60, limits=httpx.Limits(max_keepalive_connections=0)) as http:
            yield http


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> str:
    return base64.b64encode(photo_bytes(tmp_path_factory.mktemp("image"))).decode()


def post_raw(client, path: str, body: str):
    return client.post(path, content=body.encode(), headers={"content-type": "application/json"})


@pytest.mark.parametrize("path, body", [
    ("/search", r'{"text": "a \udc80 cat"}'),
    ("/knn-service", r'{"text": "\ud800"}'),
    ("/embed", r'{"texts": ["ok", "\udfff"]}'),
    ("/search", r'{"text": "x", "filters": {"\udc80": 1}}'),
])
def test_a_lone_surrogate_is_not_text(client, path, body):
    response = post_raw(client, path, body)
    assert response.status_code == 422, response.text
    assert "surrogate" in response.json()["detail"][0]["msg"]


def test_a_surrogate_pair_is_a_character(client):
    response = post_raw(client, "/search", r'{"text": "a cat \ud83d\ude00"}')
    assert response.status_code == 200, response.text


def test_a_lone_surrogate_in_a_label_is_not_text(client, image):
    response = post_raw(client, "/classify", f'{{"image": "{image}", "labels": ["\\udc80"]}}')
    assert response.status_code == 422 and "surrogate" in response.text


@pytest.mark.parametrize("template", ["{x} {}", "{0}{}", "{} {", "}{}", "{{}}", "no slot", "{} and {}"])
def test_a_template_has_one_slot_and_no_other_brace(client, image, template):
    response = client.post("/classify", json={"image": image, "labels": ["cat"], "templates": [template]})
    assert response.status_code == 422, response.text
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "templates", 0]]
    assert "'{}'" in response.json()["detail"][0]["msg"]


def test_a_template_with_its_slot_is_used(client, image):
    response = client.post("/classify", json={"image": image, "labels": ["cat", "dog"],
                                              "templates": ["a photo of a {}.", "{}"]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 2
