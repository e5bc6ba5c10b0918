"""The clip-retrieval protocol, driven the way its clients drive it.

``clip-retrieval`` itself is not installed: it requires torch and torchvision pins of its own,
and its package imports the whole back end. ``clip_query`` below sends exactly what
``ClipClient.query`` sends (clip_retrieval/clip_client.py, 2.45.0): ``requests.post`` with
a JSON string as ``data`` (so no content type), every field present, unset ones null.
"""

from __future__ import annotations

import base64
import functools
import http.server
import json
import threading

import httpx
import numpy as np
import pytest
import requests

from .conftest import CAPTIONS, start


def clip_query(url: str, indice_name: str, *, text=None, image=None, image_url=None, embedding_input=None,
               modality: str = "image", num_images: int = 40):
    """ClipClient.__search_knn_api__ with ClipClient's defaults."""
    response = requests.post(url, data=json.dumps({
        "text": text, "image": image, "image_url": image_url, "embedding_input": embedding_input,
        "deduplicate": True, "use_safety_model": True, "use_violence_detector": True,
        "indice_name": indice_name, "use_mclip": False, "aesthetic_score": 9, "aesthetic_weight": 0.5,
        "modality": modality, "num_images": num_images, "num_result_ids": num_images,
    }), timeout=60)
    assert "Content-Type" not in response.request.headers
    return response


@pytest.fixture
def knn(server):
    return functools.partial(clip_query, server.url + "/knn-service", "pics")


def test_text_query_like_clip_client(knn, client):
    response = knn(text="a red car", num_images=5)
    assert response.status_code == 200
    results = response.json()
    assert len(results) == 5
    ours = client.post("/search", json={"text": "a red car", "k": 5}).json()["results"]
    assert [r["id"] for r in results] == [h["id"] for h in ours]
    assert np.allclose([r["similarity"] for r in results], [h["score"] for h in ours], atol=1e-5)
    first = results[0]
    assert first["image_path"] == ours[0]["path"]
    assert first["url"].endswith(ours[0]["image_url"]) and first["url"].startswith("http://127.0.0.1:")
    assert requests.get(first["url"], timeout=30).content == open(first["image_path"], "rb").read()


def test_image_query_like_clip_client(knn, client):
    hit = client.post("/search", json={"text": "a photo", "k": 1}).json()["results"][0]
    encoded = base64.b64encode(open(hit["path"], "rb").read()).decode()
    results = knn(image=encoded, num_images=3).json()
    assert results[0]["id"] == hit["id"] and results[0]["similarity"] > 0.99


def test_embedding_and_text_modality(knn, client):
    vector = client.post("/embed", json={"texts": ["a green apple"]}).json()["text_vectors"][0]
    by_text = knn(text="a green apple", num_images=4).json()
    by_vector = knn(embedding_input=vector, num_images=4).json()
    assert [r["id"] for r in by_vector] == [r["id"] for r in by_text]
    texts = knn(embedding_input=vector, modality="text", num_images=5).json()
    assert sorted(r["caption"] for r in texts) == sorted(CAPTIONS)
    assert all("url" not in r for r in texts)


def test_front_end_request_and_metadata(server):
    # clip-retrieval's front end: fetch() with a string body is sent as text/plain, asks for
    # many ids, and fetches metadata for the rest as the user scrolls.
    body = {"text": "a cat", "image": None, "image_url": None, "modality": "image", "num_images": 4,
            "indice_name": "pics", "num_result_ids": 10, "use_mclip": False, "deduplicate": True,
            "use_safety_model": True}
    results = httpx.post(server.url + "/knn-service", content=json.dumps(body),
                         headers={"content-type": "text/plain;charset=UTF-8"}).json()
    assert len(results) == 10
    assert all("url" in r for r in results[:4]) and all(set(r) == {"id", "similarity"} for r in results[4:])
    rest = [r["id"] for r in results[4:]]
    metadata = httpx.post(server.url + "/metadata", content=json.dumps({"ids": rest + [987654], "indice_name": "pics"}))
    assert metadata.status_code == 200
    assert [m["id"] for m in metadata.json()] == rest
    assert all(m["metadata"]["url"].endswith(f"/items/pics/{m['id']}/image") for m in metadata.json())
    assert httpx.get(server.url + "/indices-list").json() == ["pics"]


def test_null_is_absent_and_defaults_apply(server):
    body = {"text": "a dog", "image": None, "image_url": None, "embedding_input": None, "modality": None,
            "num_images": None, "num_result_ids": None, "indice_name": None, "aesthetic_score": None}
    results = httpx.post(server.url + "/knn-service", content=json.dumps(body)).json()
    assert len(results) == 12  # the default 40, capped by the collection's 12 images
    empty_text = dict(body, text="", image=None)
    assert httpx.post(server.url + "/knn-service", content=json.dumps(empty_text)).status_code == 422


def test_bad_requests(server):
    post = functools.partial(httpx.post, server.url + "/knn-service")
    assert post(content="{nope").status_code == 422
    wrong_type = post(content=json.dumps({"text": "x", "num_images": "ten"}))
    assert wrong_type.json()["detail"][0]["loc"] == ["body", "num_images"]
    assert post(content=json.dumps({"text": "x", "indice_name": "laion5B"})).status_code == 404
    wrong_dimension = post(content=json.dumps({"embedding_input": [0.1, 0.2]}))
    assert wrong_dimension.status_code == 422 and "16" in wrong_dimension.json()["detail"][0]["msg"]
    assert post(content=json.dumps({"embedding_input": [0.0] * 16})).status_code == 422
    assert httpx.post(server.url + "/metadata", content=json.dumps({"ids": ["x"]})).status_code == 422


def test_image_url_is_not_fetched_unless_allowed(knn, server, client):
    refused = knn(image_url="http://127.0.0.1:9/cat.jpg")
    assert refused.status_code == 403 and "--allow-image-urls" in refused.json()["detail"]
    # The front end's "similar images" sends back this server's own URL: answered locally.
    own = knn(text="a blue bird", num_images=2).json()[0]
    similar = knn(image_url=own["url"], num_images=3).json()
    assert similar[0]["id"] == own["id"] and similar[0]["similarity"] > 0.99


@pytest.fixture
def image_host(tmp_path, collection_path):
    """A plain HTTP server on loopback serving one of the collection's photos."""
    photo = next((collection_path.parent.parent / "pics-photos").glob("img_07.jpg"))
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "cat.jpg").write_bytes(photo.read_bytes())
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "www"))
    host = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=host.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{host.server_address[1]}/cat.jpg", photo
    host.shutdown()
    host.server_close()


def test_image_url_is_fetched_when_allowed(collection_path, image_host):
    url, photo = image_host
    with start(collection_path, allow_image_urls=True) as server:
        results = clip_query(server.url + "/knn-service", "pics", image_url=url, num_images=2).json()
        assert results[0]["image_path"] == str(photo) and results[0]["similarity"] > 0.99
        missing = clip_query(server.url + "/knn-service", "pics", image_url=url + ".gone")
        assert missing.status_code == 400


def test_cors_for_a_front_end_on_another_origin(collection_path, server):
    front = "http://127.0.0.1:9999"
    same_origin_only = httpx.get(server.url + "/indices-list", headers={"Origin": front})
    assert "access-control-allow-origin" not in same_origin_only.headers
    with start(collection_path, cors_origins=(front,)) as allowed:
        listed = httpx.get(allowed.url + "/indices-list", headers={"Origin": front})
        assert listed.headers["access-control-allow-origin"] == front
        preflight = httpx.options(allowed.url + "/knn-service", headers={
            "Origin": front, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"})
        assert preflight.status_code == 200 and "POST" in preflight.headers["access-control-allow-methods"]
