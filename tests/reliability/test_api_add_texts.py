"""Adding texts: each text an object with its own id and metadata, or a plain string.

The body was three parallel lists (texts, ids, metadata) whose lengths had to agree, which
no JSON Schema can say: the schema allowed what the server refused. Each text now carries
its own id and metadata, so the schema states the whole rule.
"""

from __future__ import annotations

import httpx
import pytest
from api_server import served

TOKEN = "add-texts-token"


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("add-texts"), tiny_clip_spec, write_token=TOKEN) as server:
        with httpx.Client(base_url=server.url, timeout=60, headers={"Authorization": f"Bearer {TOKEN}"}) as http:
            yield http


def texts_found(client, **filters) -> list[str]:
    found = client.post("/search", json={"text": "x", "target": "text", "k": 100, "filters": filters}).json()
    return sorted(hit["text"] for hit in found["results"])


def test_texts_with_and_without_ids_and_metadata(client):
    added = client.post("/collections/pics/texts", json={"texts": [
        "a plain caption",
        {"text": "a red kite", "id": "kite", "metadata": {"batch": 1}},
        {"text": "a green boat", "metadata": {"batch": 1}},
    ]})
    assert added.status_code == 200, added.text
    assert added.json()["encoded"] == 3
    assert texts_found(client, batch=1) == ["a green boat", "a red kite"]
    assert "a plain caption" in texts_found(client)
    # The id names the text: adding it again replaces it.
    again = client.post("/collections/pics/texts", json={"texts": [{"text": "a blue kite", "id": "kite",
                                                                     "metadata": {"batch": 2}}]})
    assert again.status_code == 200 and again.json()["encoded"] == 1
    assert texts_found(client, batch=2) == ["a blue kite"] and "a red kite" not in texts_found(client)


@pytest.mark.parametrize("body, loc", [
    ({"texts": ["a"], "ids": ["x"]}, ["body", "ids"]),  # the old parallel lists
    ({"texts": ["a"], "metadata": [{}]}, ["body", "metadata"]),
    ({"texts": ["  "]}, ["body", "texts", 0]),
    ({"texts": [{"text": "a", "extra": 1}]}, ["body", "texts", 0]),
    ({"texts": []}, ["body", "texts"]),
])
def test_bodies_the_schema_refuses_are_refused(client, body, loc):
    response = client.post("/collections/pics/texts", json=body)
    assert response.status_code == 422, response.text
    assert any(e["loc"][: len(loc)] == loc for e in response.json()["detail"])


def test_the_schema_states_the_body(client):
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    assert set(schemas["AddTextsRequest"]["properties"]) == {"texts"}
    assert set(schemas["TextIn"]["properties"]) == {"text", "id", "metadata"}
    assert schemas["TextIn"]["additionalProperties"] is False
