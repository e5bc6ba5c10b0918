"""The OpenAPI document describes this server: its limits, its answers, its rules.

schemathesis (``test_api_schemathesis.py``) checks the server against the document; these
check that the document says the specific things a client needs from it.
"""

from __future__ import annotations

import httpx
import pytest
from api_server import served

from clipforge.serve.settings import Limits


@pytest.fixture(scope="module")
def schema(tmp_path_factory, tiny_clip_spec):
    limits = Limits(max_k=7, max_text_chars=300, max_labels=9, max_batch_items=5)
    with served(tmp_path_factory.mktemp("openapi"), tiny_clip_spec, limits=limits) as server:
        dim = httpx.get(server.url + "/collections").json()[0]["dim"]
        yield httpx.get(server.url + "/openapi.json").json(), dim


def walk(node):
    if isinstance(node, dict):
        yield node
        for value in node.values():
            yield from walk(value)
    elif isinstance(node, list):
        for value in node:
            yield from walk(value)


def test_the_limits_are_this_servers(schema):
    document, dim = schema
    schemas = document["components"]["schemas"]
    assert schemas["SearchRequest"]["properties"]["k"]["maximum"] == 7
    assert schemas["SearchRequest"]["properties"]["text"]["anyOf"][0]["maxLength"] == 300
    assert schemas["ClassifyRequest"]["properties"]["labels"]["maxItems"] == 9
    assert schemas["AddTextsRequest"]["properties"]["texts"]["maxItems"] == 5
    vector = schemas["KnnRequest"]["properties"]["embedding_input"]["anyOf"][0]
    assert vector["minItems"] == vector["maxItems"] == dim
    # Every placeholder resolved, and no bound in a spelling schema readers ignore.
    odd = {"ge", "le", "x-clipforge-limit", "x-clipforge-dimension"}
    assert not [node for node in walk(document) if odd & set(node) and "properties" not in node]


def test_every_operation_documents_its_errors(schema):
    document, _ = schema
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "408" in responses, (method, path)
            for status, response in responses.items():
                if status.startswith("4") or status == "503":
                    model = response["content"]["application/json"]["schema"]["$ref"]
                    assert model.endswith("ValidationErrorOut" if status == "422" else ("ErrorOut", "Status")), (
                        method, path, status)
    search = document["paths"]["/search"]["post"]["responses"]
    assert {"400", "404", "408", "413", "422", "503"} <= set(search)
    assert "Retry-After" in search["503"]["headers"]
    write = document["paths"]["/collections/{collection}/texts"]["post"]
    assert write["security"] == [{"bearer": []}] and {"401", "403"} <= set(write["responses"])


def test_a_search_needs_a_text_an_image_or_an_item(schema):
    document, _ = schema
    search = document["components"]["schemas"]["SearchRequest"]
    assert [branch["required"] for branch in search["anyOf"]] == [["text"], ["image"], ["item_id"]]
    assert search["not"]["required"] == ["image", "item_id"]
    form = document["paths"]["/search"]["post"]["requestBody"]["content"]["multipart/form-data"]
    assert form["encoding"]["image"]["contentType"] == "image/*"
    embed = document["components"]["schemas"]["EmbedRequest"]
    assert [branch["required"] for branch in embed["anyOf"]] == [["texts"], ["images"]]
