"""Query vectors given by clients: FAISS ranks only finite float32 vectors with a direction.

A vector past float32's range is refused with a 422 naming the field; NaN and Infinity are
not JSON and are refused as such; a vector whose squares overflow or underflow in float32
still ranks by its direction.
"""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from api_server import served


@pytest.fixture(scope="module")
def client(tmp_path_factory, tiny_clip_spec):
    with served(tmp_path_factory.mktemp("vectors"), tiny_clip_spec) as server:
        with httpx.Client(base_url=server.url, timeout=60) as http:
            yield http


@pytest.fixture(scope="module")
def dim(client) -> int:
    return client.get("/collections").json()[0]["dim"]


def refused(response, loc: tuple) -> bool:
    assert response.status_code == 422, response.text
    errors = response.json()["detail"]
    assert all(isinstance(e["msg"], str) and "\n" not in e["msg"] for e in errors)
    return any(tuple(e["loc"])[: len(loc)] == loc for e in errors)


@pytest.mark.parametrize("value", [1e308, -1e300, 3.5e38])
def test_an_embedding_past_float32_is_refused(client, dim, value):
    response = client.post("/knn-service", json={"embedding_input": [value] * dim})
    assert refused(response, ("body", "embedding_input"))
    assert "3.40" in response.json()["detail"][0]["msg"]  # says what the bound is


def test_nan_and_infinity_are_not_json(client, dim):
    for constant in ("NaN", "Infinity", "-Infinity"):
        values = ", ".join([constant] + ["1"] * (dim - 1))
        knn = client.post("/knn-service", content=f'{{"embedding_input": [{values}]}}')
        assert refused(knn, ("body",)) and constant in knn.json()["detail"][0]["msg"]
        search = client.post("/search", content=f'{{"text": "x", "filters": {{"a": {constant}}}}}',
                             headers={"content-type": "application/json"})
        assert refused(search, ("body",))


def test_extreme_but_finite_vectors_rank_like_their_direction(client, dim):
    def ranked(vector):
        response = client.post("/knn-service", json={"embedding_input": vector, "num_images": 5})
        assert response.status_code == 200, response.text
        hits = response.json()
        assert len(hits) == 5 and all(np.isfinite(h["similarity"]) for h in hits)
        return [h["id"] for h in hits], [h["similarity"] for h in hits]

    direction = [1.0 if i % 3 else -0.5 for i in range(dim)]
    ids, scores = ranked(direction)
    for scale in (3e38, 1e-40):  # squares overflow, or underflow to zero, in float32
        scaled_ids, scaled_scores = ranked([v * scale for v in direction])
        assert scaled_ids == ids and np.allclose(scaled_scores, scores, atol=1e-5)


def test_an_all_zero_embedding_is_a_client_error(client, dim):
    response = client.post("/knn-service", json={"embedding_input": [0.0] * dim})
    assert 400 <= response.status_code < 500 and "zero" in str(response.json()["detail"])


