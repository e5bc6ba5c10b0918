"""Bad input and limits: clear 4xx answers that name the problem, never a 500 or a traceback."""

from __future__ import annotations

import base64
import io
import threading

import httpx
import pytest
from PIL import Image

from clipforge.serve.settings import BatchSettings, Limits

from .conftest import photo_bytes, start


def field_errors(response) -> list[tuple]:
    assert response.status_code == 422, response.text
    return [tuple(e["loc"]) for e in response.json()["detail"]]


def no_traceback(response) -> None:
    assert response.status_code < 500, response.text
    assert "Traceback" not in response.text and 'File "' not in response.text


@pytest.mark.parametrize("body, loc", [
    ({"text": "x", "k": "many"}, ("body", "k")),
    ({"text": "x", "k": 0}, ("body", "k")),
    ({"text": "x", "k": 100_000}, ("body", "k")),
    ({"text": "x", "offset": -1}, ("body", "offset")),
    ({"text": "x", "text_weight": 2}, ("body", "text_weight")),
    ({"text": "x", "target": "video"}, ("body", "target")),
    ({"text": 5}, ("body", "text")),
    ({"text": "x" * 5000}, ("body", "text")),
    ({"text": "x", "filters": {"a": {"b": 1}}}, ("body", "filters", "a", "str")),
    ({"text": "x", "surprise": 1}, ("body", "surprise")),
    ({"image": "not base64!"}, ("body", "image")),
    ({"item_id": 2**70}, ("body", "item_id")),
    ({}, ("body",)),
    ({"text": "   "}, ("body",)),
])
def test_wrong_fields_get_422_naming_them(client, body, loc):
    response = client.post("/search", json=body)
    assert any(found[: len(loc)] == loc for found in field_errors(response))


def test_malformed_json_gets_422(client):
    truncated = client.post("/search", content=b'{"text": ', headers={"content-type": "application/json"})
    assert field_errors(truncated)[0][0] == "body"
    assert field_errors(client.post("/search", content=b"[1, 2]", headers={"content-type": "application/json"}))
    assert field_errors(client.post("/embed", content=b"\xff\xfe garbage"))
    assert field_errors(client.post("/search", content=b"[" * 100_000))
    bad_filter = client.post("/search", data={"text": "x", "filters": "{not json"})
    assert ("body", "filters") in field_errors(bad_filter)


def test_library_errors_are_4xx_with_a_message(client, tmp_path):
    cases = {
        404: [client.post("/search", json={"text": "x", "collection": "nope"}),
              client.post("/search", json={"item_id": 99_999}),
              client.get("/items/nope/1/thumbnail"),
              client.get("/items/pics/99999/image"),
              client.post("/knn-service", content='{"text": "x", "indice_name": "nope"}')],
        400: [client.post("/search", json={"image": base64.b64encode(b"not an image").decode()}),
              client.post("/search", files={"image": ("x.jpg", b"\x00" * 100, "image/jpeg")}),
              client.post("/embed", json={"images": [base64.b64encode(b"GIF89a-truncated").decode()]})],
    }
    for status, responses in cases.items():
        for response in responses:
            assert response.status_code == status, response.text
            assert isinstance(response.json()["detail"], str) and response.json()["detail"]
            no_traceback(response)


def test_writes_are_off_without_a_token(client):
    response = client.post("/collections/pics/texts", json={"texts": ["new"]})
    assert response.status_code == 403 and "disabled" in response.json()["detail"]


def test_writes_need_the_token(collection_path, tmp_path):
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(collection_path, copy)
    with start(copy, write_token="s3cret") as server, httpx.Client(base_url=server.url) as http:
        assert http.post("/collections/copy/texts", json={"texts": ["a yellow submarine"]}).status_code == 401
        wrong = http.post("/collections/copy/texts", json={"texts": ["a yellow submarine"]},
                          headers={"Authorization": "Bearer guess"})
        assert wrong.status_code == 401
        added = http.post("/collections/copy/texts", headers={"Authorization": "Bearer s3cret"},
                          json={"texts": [{"text": "a yellow submarine", "metadata": {"new": True}}]})
        assert added.status_code == 200 and added.json()["encoded"] == 1
        found = http.post("/search", json={"text": "x", "target": "text", "k": 50, "filters": {"new": True}}).json()
        assert [h["text"] for h in found["results"]] == ["a yellow submarine"]


@pytest.fixture(scope="module")
def strict(collection_path):
    limits = Limits(max_upload_bytes=20_000, max_image_pixels=10_000, max_k=5, max_text_chars=20,
                    max_batch_items=2, max_labels=3, max_prompts=8)
    with start(collection_path, limits=limits) as server, httpx.Client(base_url=server.url) as http:
        yield http


def test_limits_are_4xx(strict, tmp_path):
    big = photo_bytes(tmp_path, seed=1, size=(150, 100), fmt="PNG")  # over the 20 kB image limit
    huge = photo_bytes(tmp_path, seed=1, size=(400, 300), fmt="PNG")  # over the whole-body limit too
    assert 20_000 < len(big) < Limits(max_upload_bytes=20_000).max_body_bytes // 2 < len(huge)
    for image in (big, huge):
        as_file = strict.post("/search", files={"image": ("big.png", image, "image/png")})
        as_base64 = strict.post("/search", json={"image": base64.b64encode(image).decode()})
        assert as_file.status_code == as_base64.status_code == 413, as_file.text
        assert "limit" in as_file.json()["detail"]
    wide = photo_bytes(tmp_path, seed=2, size=(200, 100))  # 20,000 pixels > 10,000
    assert len(wide) < 20_000
    too_many_pixels = strict.post("/search", files={"image": ("w.jpg", wide, "image/jpeg")})
    assert too_many_pixels.status_code == 400 and "too large" in too_many_pixels.json()["detail"]
    assert ("body", "k") in field_errors(strict.post("/search", json={"text": "x", "k": 6}))
    assert ("body", "text") in field_errors(strict.post("/search", json={"text": "x" * 21}))
    assert ("body", "texts") in field_errors(strict.post("/embed", json={"texts": ["a", "b", "c"]}))
    assert ("body", "labels") in field_errors(strict.post("/classify", json={"image": "", "labels": list("abcd")}))
    too_many_prompts = strict.post("/classify", json={"image": "", "labels": list("abc"), "templates": ["{}"] * 3})
    assert field_errors(too_many_prompts) == [("body",)] and "templates" in too_many_prompts.json()["detail"][0]["msg"]
    assert ("body", "num_images") in field_errors(strict.post("/knn-service", content='{"text": "x", "num_images": 6}'))


def test_body_limit_holds_without_content_length(strict):
    def chunks():
        for _ in range(200):
            yield b"x" * 1024

    response = strict.post("/search", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413


def test_slow_requests_get_408(collection_path):
    with start(collection_path, limits=Limits(request_seconds=0.001)) as server:
        response = httpx.post(server.url + "/search", json={"text": "a slow query"})
        assert response.status_code == 408 and "limit" in response.json()["detail"]


def test_concurrent_text_queries_share_model_calls(collection_path):
    # A long wait makes the batch deterministic: every query arrives within it.
    with start(collection_path, batching=BatchSettings(max_batch=32, max_wait_ms=300)) as server:
        texts = [f"a photo of a red car number {i}" for i in range(8)]
        results: dict[int, list] = {}

        def query(i):
            response = httpx.post(server.url + "/search", json={"text": texts[i], "k": 3}, timeout=30)
            results[i] = [h["id"] for h in response.json()["results"]]

        threads = [threading.Thread(target=query, args=(i,)) for i in range(len(texts))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        metrics = httpx.get(server.url + "/metrics").text
        count = float(metrics.split("clipforge_text_batch_size_count ")[1].split()[0])
        total = float(metrics.split("clipforge_text_batch_size_sum ")[1].split()[0])
        assert total == 8 and count < 8
        alone = [httpx.post(server.url + "/search", json={"text": t, "k": 3}).json()["results"] for t in texts[:2]]
        assert [[h["id"] for h in r] for r in alone] == [results[0], results[1]]


def test_pixel_bomb_is_refused(client):
    # A PNG whose header claims a huge size: refused from the header, never decoded.
    out = io.BytesIO()
    Image.new("1", (8_000, 8_000)).save(out, format="PNG")
    response = client.post("/search", files={"image": ("bomb.png", out.getvalue(), "image/png")})
    assert response.status_code == 400 and "too large" in response.json()["detail"]
