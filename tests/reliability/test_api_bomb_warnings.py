"""Pillow's DecompressionBombWarning never reaches the server's stderr.

The server refuses images past its own pixel limit from their header; below it, an image
is served whatever Pillow thinks of its size, so Pillow's warning (issued past
``Image.MAX_IMAGE_PIXELS``, about 89 MP) says nothing the server has not decided, and on a
server's stderr it is noise, once per upload path. The server runs in a child process, so
that its stderr is exactly what an operator would see.
"""

from __future__ import annotations

import base64

import httpx
from api_server import served_in_child
from PIL import Image
from serve.conftest import build_collection

from clipforge.index.collection import Collection

SIDE = 9_500  # 90.25 MP: past Pillow's warning, short of its error (twice that)
SERVER_LIMIT = 100_000_000


def test_uploads_past_pillows_threshold_warn_nobody(tmp_path, tiny_clip_spec):
    assert Image.MAX_IMAGE_PIXELS < SIDE * SIDE < min(2 * Image.MAX_IMAGE_PIXELS, SERVER_LIMIT)
    big = tmp_path / "big" / "big.png"
    big.parent.mkdir()
    Image.new("1", (SIDE, SIDE)).save(big)  # 11 kB on disk, 270 MB decoded to RGB
    where = build_collection(tmp_path, tiny_clip_spec)
    with Collection.open(where) as collection:
        collection.add_images([big.parent], workers=1, max_pixels=SERVER_LIMIT)
        item = collection.store.items_by_key([str(big)])[str(big)].id
    data = big.read_bytes()
    encoded = base64.b64encode(data).decode()
    stderr = tmp_path / "stderr.txt"
    with served_in_child(where, stderr, max_image_pixels=SERVER_LIMIT) as url, \
            httpx.Client(base_url=url, timeout=120) as http:
        answers = {
            "upload": http.post("/search", files={"image": ("big.png", data, "image/png")}),
            "search": http.post("/search", json={"image": encoded, "k": 1}),
            "embed": http.post("/embed", json={"images": [encoded]}),
            "classify": http.post("/classify", json={"image": encoded, "labels": ["dark", "light"]}),
            "knn": http.post("/knn-service", json={"image": encoded, "num_images": 1}),
            "more like": http.post("/search", json={"item_id": item, "text": "brighter"}),
            "thumbnail": http.get(f"/items/{where.name}/{item}/thumbnail"),
            "image": http.get(f"/items/{where.name}/{item}/image"),
        }
    assert {path: r.status_code for path, r in answers.items()} == dict.fromkeys(answers, 200)
    log = stderr.read_text()
    assert "DecompressionBombWarning" not in log and "decompression bomb" not in log.lower(), log[-3000:]
