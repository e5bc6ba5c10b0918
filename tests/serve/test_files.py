"""Item files: only the collection's own image files are reachable, whatever the request holds."""

from __future__ import annotations

import http.client
import os
import shutil

import httpx
import pytest
from conftest import make_photo

from clipforge.index.collection import Collection

from .conftest import start

SECRET = b"top secret, not an image of the collection"


def raw_get(server, path: str) -> tuple[int, bytes]:
    """GET with the path sent exactly as written: no client-side normalisation of '..' or '%2F'."""
    connection = http.client.HTTPConnection(server.host, server.port, timeout=30)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


@pytest.mark.parametrize("path", [
    "/items/pics/../../../../etc/passwd",
    "/items/pics/1/../../../../../etc/passwd",
    "/items/pics/..%2F..%2F..%2Fetc%2Fpasswd/image",
    "/items/pics/1%2F..%2F..%2Fetc%2Fpasswd/image",
    "/items/..%2F..%2Fetc/1/image",
    "/items/%2Fetc%2Fpasswd/1/image",
    "/items//etc/passwd/1/image",
    "/items/pics/%2e%2e%2f%2e%2e%2fetc%2fpasswd/thumbnail",
    "/items/pics/-1/image",
    "/items/pics/99999999999999999999999/image",
    "/items/pics/0x1/image",
    "/static/../app.py",
    "/static/..%2Fapp.py",
    "/static/%2e%2e/%2e%2e/index/collection.py",
    "/static//etc/passwd",
    "/..%2F..%2Fetc%2Fpasswd",
])
def test_traversal_attempts_fail(server, path):
    status, body = raw_get(server, path)
    assert status in (400, 404, 405, 422), (status, body[:200])
    assert b"root:" not in body and b"import" not in body


def test_text_items_and_unknown_items_have_no_file(client):
    text_hit = client.post("/search", json={"text": "car", "target": "text", "k": 1}).json()["results"][0]
    assert client.get(f"/items/pics/{text_hit['id']}/image").status_code == 404
    assert client.get(f"/items/pics/{text_hit['id']}/thumbnail").status_code == 404
    assert client.get("/items/pics/0/image").status_code == 404


@pytest.fixture
def linked(tmp_path, tiny_clip_spec):
    """A collection whose files are afterwards swapped for links out of their folder."""
    photos = tmp_path / "photos"
    for i in range(4):
        make_photo(photos / f"p{i}.jpg", seed=i)
    make_photo(photos / "sub" / "s.jpg", seed=9)
    os.symlink(photos / "p0.jpg", photos / "link-inside.jpg")  # a link within the folder: fine
    os.symlink(photos / "p1.jpg", photos / "sub" / "link-up.jpg")  # a link to another indexed file: fine
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.jpg").write_bytes(SECRET)
    make_photo(outside / "s.jpg", seed=9)
    with Collection.create(tmp_path / "linked", model=tiny_clip_spec) as collection:
        collection.add_images([photos], workers=1)
        ids = {os.path.basename(p): i for i, p in collection.store.live_image_paths_under(str(photos))}
    with start(tmp_path / "linked") as server, httpx.Client(base_url=server.url) as http:
        yield http, photos, outside, ids


def test_links_out_of_the_folder_are_refused(linked):
    http, photos, outside, ids = linked
    assert http.get(f"/items/linked/{ids['link-inside.jpg']}/image").content == (photos / "p0.jpg").read_bytes()
    assert http.get(f"/items/linked/{ids['p1.jpg']}/image").status_code == 200
    assert http.get(f"/items/linked/{ids['link-up.jpg']}/image").content == (photos / "p1.jpg").read_bytes()

    (photos / "p1.jpg").unlink()
    os.symlink(outside / "secret.jpg", photos / "p1.jpg")  # the file becomes a link out
    (photos / "p2.jpg").unlink()
    os.symlink("/etc/passwd", photos / "p2.jpg")
    shutil.rmtree(photos / "sub")
    os.symlink(outside, photos / "sub")  # the folder becomes a link out
    for name in ("p1.jpg", "p2.jpg", "s.jpg", "link-up.jpg"):
        for kind in ("image", "thumbnail"):
            response = http.get(f"/items/linked/{ids[name]}/{kind}")
            assert response.status_code == 404, (name, kind)
            assert SECRET not in response.content and b"root:" not in response.content


def test_a_file_that_is_no_longer_an_image_is_not_served(linked):
    http, photos, _, ids = linked
    (photos / "p3.jpg").write_bytes(SECRET)
    assert http.get(f"/items/linked/{ids['p3.jpg']}/image").status_code == 404
    assert http.get(f"/items/linked/{ids['p3.jpg']}/thumbnail").status_code == 404
