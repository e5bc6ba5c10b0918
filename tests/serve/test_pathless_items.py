"""Items with no file here (imported embeddings, images fetched from URLs) keep their own url,
and the server offers no link to a file it does not have."""

import httpx
import numpy as np

from clipforge.index.collection import Collection
from clipforge.index.store import NewItem
from clipforge.serve import ServeSettings, create_app
from clipforge.serve.runner import BackgroundServer


def serve_one_imported_image(where, spec) -> BackgroundServer:
    """A server over a collection holding one image item with no file: an imported vector."""
    with Collection.create(where, model=spec) as coll:
        vector = np.ones((1, coll.dim), np.float32) / np.sqrt(coll.dim)
        with coll.writing():
            row = coll.append_vectors(vector)
            coll.commit([NewItem("image", "import:laion:0", row, metadata={
                "url": "https://example.org/cat.jpg", "image_path": "00000/000000001.jpg", "caption": "a cat"})])
    return BackgroundServer(create_app(ServeSettings(collections=(str(where),), load_in_background=False))).start()


def test_an_imported_image_keeps_its_url(tmp_path, tiny_clip_spec):
    server = serve_one_imported_image(tmp_path / "c", tiny_clip_spec)
    try:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            hit = http.post("/search", json={"text": "a cat", "k": 1}).json()["results"][0]
            assert hit["image_url"] is None and hit["thumbnail_url"] is None and hit["path"] is None
            knn = http.post("/knn-service", json={"text": "a cat", "num_images": 1}).json()[0]
            assert knn["url"] == "https://example.org/cat.jpg" and knn["image_path"] == "00000/000000001.jpg"
            assert http.get(f"/items/c/{hit['id']}/image").status_code == 404
    finally:
        server.stop()
