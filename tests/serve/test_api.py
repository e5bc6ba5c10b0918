"""The HTTP API over real HTTP: search, embed, classify, collections, health, metrics."""

from __future__ import annotations

import base64

import httpx
import numpy as np
import pytest

from clipforge.index.collection import Collection

from .conftest import CAPTIONS


@pytest.fixture(scope="module")
def library(collection_path):
    """The same collection opened directly, to check the server against the library."""
    with Collection.open(collection_path) as collection:
        yield collection


def image_file(library, name: str) -> tuple[int, bytes]:
    item_id, path = next((i, p) for i, p in library.store.live_image_paths_under(str(library.path.parent.parent))
                         if p.endswith(name))
    return item_id, open(path, "rb").read()


def ids(response) -> list[int]:
    return [hit["id"] for hit in response.json()["results"]]


def test_health_ready_and_collections(client, library):
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.get("/readyz").json()["status"] == "ready"
    [info] = client.get("/collections").json()
    index = info.pop("index")
    assert info == {"name": "pics", "model": library.model_spec, "dim": library.dim,
                    "images": 12, "texts": len(CAPTIONS), "removed": 0, "skipped": 0}
    assert [(i["kind"], i["type"], i["setting"], i["indexed"] + i["fresh"]) for i in index] == [
        ("image", "Flat", "auto", 12), ("text", "Flat", "auto", len(CAPTIONS))]
    assert all(i["recall_at_10"] in (None, 1.0) and i["bytes_per_vector"] > 0 for i in index)


def test_text_search_matches_the_library(client, library):
    response = client.post("/search", json={"text": "a red car", "k": 5})
    assert response.status_code == 200
    body = response.json()
    expected = library.search("a red car", k=5)
    assert ids(response) == [h.id for h in expected]
    assert np.allclose([h["score"] for h in body["results"]], [h.score for h in expected], atol=1e-5)
    first = body["results"][0]
    assert first["kind"] == "image" and first["path"].startswith(str(library.path.parent.parent))
    thumbnail = client.get(first["thumbnail_url"])
    assert thumbnail.status_code == 200 and thumbnail.headers["content-type"] == "image/jpeg"
    assert client.get(first["image_url"]).content == open(first["path"], "rb").read()


def test_image_query_by_upload_and_by_base64_finds_the_same_file(client, library):
    item_id, data = image_file(library, "img_03.jpg")
    uploaded = client.post("/search", files={"image": ("q.jpg", data, "image/jpeg")}, data={"k": "3"})
    encoded = client.post("/search", json={"image": base64.b64encode(data).decode(), "k": 3})
    as_data_url = "data:image/jpeg;base64," + base64.b64encode(data).decode()
    data_url = client.post("/search", json={"image": as_data_url, "k": 3})
    assert uploaded.status_code == encoded.status_code == data_url.status_code == 200
    assert ids(uploaded) == ids(encoded) == ids(data_url)
    top = uploaded.json()["results"][0]
    assert top["id"] == item_id and top["score"] > 0.99


def test_more_like_this_uses_the_stored_vector_and_leaves_the_item_out(client, library):
    item_id, _ = image_file(library, "img_04.jpg")
    response = client.post("/search", json={"item_id": item_id, "k": 4})
    assert response.status_code == 200
    vector = library.vectors_for_ids([item_id])[0]
    expected = [h.id for h in library.search_vectors(vector[None], k=5)[0] if h.id != item_id][:4]
    assert ids(response) == expected


def test_composed_query_moves_with_the_weight(client, library):
    _, data = image_file(library, "img_05.jpg")
    image_only = client.post("/search", json={"image": base64.b64encode(data).decode(), "k": 12})
    text_only = client.post("/search", json={"text": "a blue bird", "k": 12})

    def composed(weight):
        return client.post("/search", files={"image": ("q.jpg", data, "image/jpeg")},
                           data={"text": "a blue bird", "text_weight": str(weight), "k": "12"})

    assert ids(composed(0.0)) == ids(image_only)
    assert ids(composed(1.0)) == ids(text_only)
    halfway = composed(0.5).json()["results"]
    assert halfway == sorted(halfway, key=lambda h: -h["score"])


def test_item_plus_instruction(client, library):
    item_id, _ = image_file(library, "img_06.jpg")
    plain = client.post("/search", json={"item_id": item_id, "k": 11})
    red = client.post("/search", json={"item_id": item_id, "text": "red", "text_weight": 0.9, "k": 11})
    assert red.status_code == 200 and item_id not in ids(red)
    assert [h["score"] for h in red.json()["results"]] != [h["score"] for h in plain.json()["results"]]
    text_item = next(h for h in client.post("/search", json={"text": "car", "target": "text"}).json()["results"])
    refused = client.post("/search", json={"item_id": text_item["id"], "text": "red"})
    assert refused.status_code == 404 and "no image" in refused.json()["detail"]


def test_pages_are_disjoint_and_cover_everything(client):
    pages = [client.post("/search", json={"text": "a photo", "k": 5, "offset": offset}).json() for offset in (0, 5, 10)]
    seen = [hit["id"] for page in pages for hit in page["results"]]
    assert len(seen) == len(set(seen)) == 12
    assert [page["has_more"] for page in pages] == [True, True, False]
    scores = [hit["score"] for page in pages for hit in page["results"]]
    assert scores == sorted(scores, reverse=True)


def test_filters_min_score_and_text_target(client):
    texts = client.post("/search", json={"text": "a dog", "target": "text", "k": 10}).json()["results"]
    assert sorted(h["text"] for h in texts) == sorted(CAPTIONS)
    filtered = client.post("/search", json={"text": "a dog", "target": "text", "filters": {"n": [1, 3]}}).json()
    assert sorted(h["metadata"]["n"] for h in filtered["results"]) == [1, 3]
    single = client.post("/search", json={"text": "a dog", "target": "text", "filters": {"source": "captions", "n": 2}})
    assert [h["text"] for h in single.json()["results"]] == [CAPTIONS[2]]
    cut = sorted(h["score"] for h in texts)[2]
    above = client.post("/search", json={"text": "a dog", "target": "text", "min_score": cut}).json()["results"]
    assert len(above) == 3 and all(h["score"] >= cut for h in above)


def test_embed_returns_the_models_vectors(client, library):
    _, data = image_file(library, "img_01.jpg")
    encoded = base64.b64encode(data).decode()
    response = client.post("/embed", json={"texts": ["a red car", "a cat"], "images": [encoded]})
    assert response.status_code == 200
    body = response.json()
    assert body["model"] == library.model_spec and body["dim"] == library.dim
    texts, images = np.array(body["text_vectors"]), np.array(body["image_vectors"])
    assert texts.shape == (2, library.dim) and images.shape == (1, library.dim)
    assert np.allclose(np.linalg.norm(texts, axis=1), 1, atol=1e-4)
    assert np.allclose(texts, library.encoder.encode_texts(["a red car", "a cat"]), atol=1e-5)
    assert np.allclose(images[0], library.vectors_for_ids([image_file(library, "img_01.jpg")[0]])[0], atol=2e-2)


def test_classify_json_and_multipart(client, library):
    _, data = image_file(library, "img_02.jpg")
    labels = ["dog", "cat", "car"]
    as_json = client.post("/classify", json={"image": base64.b64encode(data).decode(), "labels": labels})
    as_form = client.post("/classify", files={"image": ("x.jpg", data, "image/jpeg")},
                          data={"labels": labels})
    assert as_json.status_code == as_form.status_code == 200
    predictions = as_json.json()["predictions"]
    # Equal up to bf16 rounding: the prompts may be batched differently each time.
    by_label = {p["label"]: p["probability"] for p in as_form.json()["predictions"]}
    assert all(by_label[p["label"]] == pytest.approx(p["probability"], abs=1e-2) for p in predictions)
    assert sorted(p["label"] for p in predictions) == sorted(labels)
    assert sum(p["probability"] for p in predictions) == pytest.approx(1.0, abs=1e-5)
    assert [p["probability"] for p in predictions] == sorted((p["probability"] for p in predictions), reverse=True)
    custom = client.post("/classify", json={"image": base64.b64encode(data).decode(), "labels": labels,
                                            "templates": ["a photo of a {}."]})
    assert custom.status_code == 200
    duplicate = client.post("/classify", json={"image": base64.b64encode(data).decode(), "labels": ["a", "a "]})
    assert duplicate.status_code == 422 and "unique" in duplicate.text
    assert client.post("/classify", json={"image": base64.b64encode(data).decode(), "labels": ["a"],
                                          "templates": ["no slot"]}).status_code == 422
    assert as_json.json()["text_memory"] is None  # the tiny model ships none


def test_classify_reads_through_the_models_text_memory_unless_asked_not_to(tmp_path, tiny_clip_dir, library):
    import shutil

    from clipforge.models.text_memory import MEMORY_FILE, TextMemory

    from .conftest import build_collection, start

    model = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, model)
    TextMemory(library.encoder.encode_texts(["a dog"]), top_k=1).save(model / MEMORY_FILE)
    running = start(build_collection(tmp_path, f"hf:{model}", name="remembering"))
    try:
        _, data = image_file(library, "img_03.jpg")
        body = {"image": base64.b64encode(data).decode(), "labels": ["a cat", "a dog"], "templates": ["{}"]}
        through = httpx.post(f"{running.url}/classify", json=body, timeout=30).json()
        plain = httpx.post(f"{running.url}/classify", json={**body, "text_memory": False}, timeout=30).json()
    finally:
        running.stop()
    # The memory holds one caption, "a dog": the image reads as exactly that text.
    assert through["text_memory"] == f"hf:{model}" and plain["text_memory"] is None
    assert through["predictions"][0]["label"] == "a dog"
    assert through["predictions"][0]["score"] == pytest.approx(1, abs=1e-2)
    assert max(p["score"] for p in plain["predictions"]) < 0.99


def test_openapi_documents_every_route(client):
    schema = client.get("/openapi.json").json()
    for path in ("/search", "/embed", "/classify", "/collections", "/healthz", "/readyz", "/metrics",
                 "/knn-service", "/indices-list", "/metadata", "/items/{collection}/{item_id}/thumbnail"):
        assert path in schema["paths"], path
    search_body = schema["paths"]["/search"]["post"]["requestBody"]["content"]
    assert set(search_body) == {"application/json", "multipart/form-data"}
    assert "SearchRequest" in schema["components"]["schemas"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "/docs-assets/swagger-ui-bundle.js" in docs.text  # no CDN
    assert client.get("/docs-assets/swagger-ui-bundle.js").status_code == 200


def test_metrics_count_requests_and_latency(client):
    client.post("/search", json={"text": "metrics"})
    client.post("/search", json={"text": "x", "k": 0})
    text = client.get("/metrics").text
    assert 'clipforge_http_requests_total{method="POST",route="/search",status="200"}' in text
    assert 'clipforge_http_requests_total{method="POST",route="/search",status="422"}' in text
    assert 'clipforge_http_request_duration_seconds_bucket{le="0.5",method="POST",route="/search"}' in text
    assert "clipforge_text_batch_size_count" in text


def test_page_and_static_files(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert "default-src 'self'" in page.headers["content-security-policy"]
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/style.css").status_code == 200

