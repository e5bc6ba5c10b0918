"""Filtering a photo library by what its files record, from Python: exactly the top k of the
matching photos (against brute force), sidecars noticed by a re-index, upgraded collections
read once, and the keys a collection holds counted."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import make_photo
from photo_library import build_library, selective_and_broad, top_k, touch_later

from clipforge import Collection


@pytest.fixture(scope="module")
def library(tmp_path_factory, tiny_clip_spec):
    root = tmp_path_factory.mktemp("library")
    photos = build_library(root / "photos")
    coll = Collection.create(root / "coll", model=tiny_clip_spec)
    coll.add_images([root / "photos"], workers=0)
    stored = np.stack([coll.vectors_for_paths([p.path])[str(p.path.resolve())] for p in photos])
    yield coll, photos, stored, root / "photos"
    coll.close()


def test_every_key_is_stored_as_the_files_say(library):
    coll, photos, _, _ = library
    for photo in photos:
        hit = coll.get(coll.store.items_by_key([str(photo.path.resolve())])[str(photo.path.resolve())].id)
        assert {key: hit.metadata.get(key) for key in photo.expected} == photo.expected, photo.path.name


@pytest.mark.parametrize("case", range(10))
def test_filtered_search_is_the_top_k_of_the_matching_photos(library, case):
    coll, photos, stored, root = library
    conditions = selective_and_broad(root)[case]
    query = stored[3] + stored[17] - 0.5 * stored[25]
    query /= np.linalg.norm(query)
    for k, offset in ((5, 0), (4, 3)):
        got = coll.search_vectors(query, k=k, offset=offset, where=conditions)[0]
        assert [h.path for h in got] == top_k(photos, stored, query, conditions, k, offset), conditions


def test_a_text_query_filters_the_same_way(library):
    coll, photos, stored, _ = library
    query = coll.query_vector("a photo at the beach")
    got = coll.search("a photo at the beach", k=6, where=["camera~Pixel", "taken<2024-01-01"])
    assert [h.path for h in got] == top_k(photos, stored, query, ["camera~Pixel", "taken<2024-01-01"], 6)
    assert {h.metadata["camera"] for h in got} <= {"Google Pixel 7", "Google Pixel 8 Pro"}


def test_info_counts_the_keys_of_live_items(library):
    coll, photos, _, _ = library
    keys = coll.info()["metadata_keys"]
    assert keys["name"] == keys["folder"] == keys["modified"] == len(photos)
    assert keys["album"] == sum("album" in p.expected for p in photos) == 8
    assert keys["taken"] == sum("taken" in p.expected for p in photos)
    assert list(keys.values()) == sorted(keys.values(), reverse=True), "most common first"


def test_removed_photos_leave_the_key_counts(tmp_path, tiny_clip_spec):
    coll, photos = _photo_copy(tmp_path, tiny_clip_spec, count=6)
    photos[0].path.unlink()  # one of the two with a sidecar
    coll.add_images([tmp_path / "photos"], workers=0)
    keys = coll.info()["metadata_keys"]
    assert keys["name"] == 5 and keys["album"] == 1
    coll.close()


def _photo_copy(tmp_path, tiny_clip_spec, count=10):
    photos = build_library(tmp_path / "photos", count=count)
    coll = Collection.create(tmp_path / "coll", model=tiny_clip_spec)
    coll.add_images([tmp_path / "photos"], workers=0)
    return coll, photos


def _paths(hits):
    return sorted(h.path for h in hits)


def test_a_changed_added_or_removed_sidecar_is_picked_up_by_a_reindex(tmp_path, tiny_clip_spec):
    coll, photos = _photo_copy(tmp_path, tiny_clip_spec)
    first, sixth, third = (str(photos[i].path.resolve()) for i in (0, 5, 2))
    assert _paths(coll.search_vectors(np.ones(coll.dim), k=20, where="album=Holiday")[0]) == [first]

    sidecar = photos[0].path.parent / (photos[0].path.name + ".json")
    sidecar.write_text(json.dumps({"album": "Work", "rating": 9}))
    touch_later(sidecar)  # an edit within the same clock tick must still count
    (photos[5].path.parent / (photos[5].path.name + ".json")).unlink()
    (photos[2].path.parent / (photos[2].path.name + ".json")).write_text('{"album": "Holiday"}')
    report = coll.add_images([tmp_path / "photos"], workers=0)
    assert (report.encoded, report.reused, report.unchanged) == (0, 3, 7), "metadata read again, nothing encoded"

    assert _paths(coll.search_vectors(np.ones(coll.dim), k=20, where="album=Holiday")[0]) == [third]
    assert _paths(coll.search_vectors(np.ones(coll.dim), k=20, where=["album=Work", "rating>5"])[0]) == [first]
    assert sixth not in _paths(coll.search_vectors(np.ones(coll.dim), k=20, where="album exists")[0])
    again = coll.add_images([tmp_path / "photos"], workers=0)
    assert (again.encoded, again.reused, again.unchanged) == (0, 0, 10)
    coll.close()


def test_a_broken_sidecar_is_findable_and_its_fix_is_noticed(tmp_path, tiny_clip_spec):
    coll, photos = _photo_copy(tmp_path, tiny_clip_spec, count=3)
    sidecar = photos[1].path.parent / (photos[1].path.name + ".json")
    sidecar.write_text("{'album': 'single quotes are not JSON'}")
    coll.add_images([tmp_path / "photos"], workers=0)
    broken = coll.search_vectors(np.ones(coll.dim), k=5, where="sidecar_error exists")[0]
    assert [h.path for h in broken] == [str(photos[1].path.resolve())]
    assert "p001.jpg.json is not valid JSON" in broken[0].metadata["sidecar_error"]
    sidecar.write_text('{"album": "fixed"}')
    touch_later(sidecar)
    coll.add_images([tmp_path / "photos"], workers=0)
    assert coll.search_vectors(np.ones(coll.dim), k=5, where="sidecar_error exists")[0] == []
    assert len(coll.search_vectors(np.ones(coll.dim), k=5, where="album=fixed")[0]) == 1
    coll.close()


def test_a_version_2_collection_reads_its_photos_metadata_once(tmp_path, tiny_clip_spec):
    coll, photos = _photo_copy(tmp_path, tiny_clip_spec)
    db = coll.store.db  # what version 2 wrote: no signature, images with width, height and bytes only
    for item_id, metadata in db.execute("SELECT id, metadata FROM items").fetchall():
        old = {key: value for key, value in json.loads(metadata).items() if key in ("width", "height", "bytes")}
        db.execute("UPDATE items SET metadata = ? WHERE id = ?", (json.dumps(old), item_id))
        db.execute("DELETE FROM item_values WHERE item_id = ? AND key NOT IN ('width', 'height', 'bytes')", (item_id,))
    db.execute("ALTER TABLE items DROP COLUMN meta_signature")
    coll.store.set_meta("schema_version", 2)
    coll.close()

    with Collection.open(tmp_path / "coll") as upgraded:
        assert upgraded.search_vectors(np.ones(upgraded.dim), k=20, where="taken exists")[0] == []
        report = upgraded.add_images([tmp_path / "photos"], workers=0)
        assert (report.encoded, report.reused) == (0, 10)
        found = _paths(upgraded.search_vectors(np.ones(upgraded.dim), k=20, where="taken exists")[0])
        assert found == sorted(str(p.path.resolve()) for p in photos if "taken" in p.expected)


def test_names_that_are_not_utf8_keep_their_sidecars(tmp_path, tiny_clip_spec):
    folder = os.fsencode(tmp_path / "photos")
    os.makedirs(folder)
    for stem, sidecar in ((b"caf\xe9", b'{"album": "ok"}'), (b"na\xefve", b"{broken")):
        make_photo(Path(os.fsdecode(os.path.join(folder, stem + b".jpg"))), seed=len(stem))
        with open(os.path.join(folder, stem + b".jpg.json"), "wb") as f:
            f.write(sidecar)
    with Collection.create(tmp_path / "coll", model=tiny_clip_spec) as coll:
        assert coll.add_images([tmp_path / "photos"], workers=0).encoded == 2
        [good] = coll.search_vectors(np.ones(coll.dim), k=5, where="album=ok")[0]
        [bad] = coll.search_vectors(np.ones(coll.dim), k=5, where="sidecar_error exists")[0]
        assert good.metadata["name"] == "caf\\xe9.jpg"
        assert bad.metadata["sidecar_error"].startswith("na\\xefve.jpg.json is not valid JSON")
        assert coll.add_images([tmp_path / "photos"], workers=0).unchanged == 2
