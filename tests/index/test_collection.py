import os
import shutil

import numpy as np
import pytest

from clipforge import Collection
from clipforge.errors import CollectionError, InputError, ModelMismatchError, NotFoundError
from clipforge.index.schema import SCHEMA_VERSION
from conftest import make_photo


@pytest.fixture
def coll(tmp_path, tiny_clip_spec):
    with Collection.create(tmp_path / "coll", model=tiny_clip_spec) as c:
        yield c


def item_rows(c):
    return c.store.db.execute("SELECT key, vector_row, removed FROM items WHERE kind='image' ORDER BY key").fetchall()


def test_index_then_reindex_unchanged_encodes_nothing(coll, photo_dir):
    first = coll.add_images([photo_dir], workers=0)
    assert (first.encoded, first.unchanged, first.skipped) == (12, 0, 0)
    second = coll.add_images([photo_dir], workers=0)
    assert (second.encoded, second.reused, second.unchanged) == (0, 0, 12)
    assert coll.info()["images"] == 12
    assert coll.info()["vector_rows"] == 12


def test_moved_file_reuses_its_vector_and_old_path_is_removed(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    old = str(photo_dir / "img_03.jpg")
    row_before = coll.store.items_by_key([old])[old].vector_row
    new = photo_dir / "nested" / "moved.jpg"
    os.rename(old, new)
    report = coll.add_images([photo_dir], workers=0)
    assert (report.encoded, report.reused, report.removed) == (0, 1, 1)
    moved = coll.store.items_by_key([str(new)])[str(new)]
    assert moved.vector_row == row_before
    assert coll.store.items_by_key([old])[old].removed
    hits = coll.search(image=new, k=1)
    assert hits[0].path == str(new) and hits[0].score > 0.99
    assert coll.info()["vector_rows"] == 12  # no new vector written


def test_duplicate_content_in_one_run_is_encoded_once(coll, tmp_path):
    folder = tmp_path / "dups"
    make_photo(folder / "a.jpg", seed=5)
    shutil.copy(folder / "a.jpg", folder / "b.jpg")
    report = coll.add_images([folder], workers=0)
    assert (report.encoded, report.reused) == (1, 1)
    rows = {key: row for key, row, _ in item_rows(coll)}
    assert rows[str(folder / "a.jpg")] == rows[str(folder / "b.jpg")]


def test_changed_content_is_reencoded(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    target = photo_dir / "img_00.jpg"
    make_photo(target, seed=999)
    os.utime(target, ns=(1, 1_000_000_000))  # a different mtime, whatever the clock says
    report = coll.add_images([photo_dir], workers=0)
    assert (report.encoded, report.unchanged) == (1, 11)
    assert coll.search(image=target, k=1)[0].path == str(target)


def test_vanished_file_comes_back_unchanged(coll, photo_dir, tmp_path):
    coll.add_images([photo_dir], workers=0)
    kept = tmp_path / "kept.jpg"
    shutil.move(photo_dir / "img_01.jpg", kept)
    assert coll.add_images([photo_dir], workers=0).removed == 1
    assert coll.info()["images"] == 11
    shutil.move(kept, photo_dir / "img_01.jpg")
    report = coll.add_images([photo_dir], workers=0)
    assert report.encoded == 0 and coll.info()["images"] == 12


def test_bad_files_are_skipped_listed_and_not_retried(coll, photo_dir):
    (photo_dir / "empty.jpg").write_bytes(b"")
    (photo_dir / "text.png").write_text("not an image")
    data = (photo_dir / "img_00.jpg").read_bytes()
    (photo_dir / "cut.jpg").write_bytes(data[: len(data) // 3])
    report = coll.add_images([photo_dir], workers=0)
    assert report.encoded == 12 and report.skipped == 3
    reasons = {os.path.basename(e["path"]): e["reason"] for e in coll.info()["skipped_files"]}
    assert reasons["empty.jpg"] == "empty file"
    assert "not an image" in reasons["text.png"]
    assert "truncated" in reasons["cut.jpg"] or "corrupt" in reasons["cut.jpg"]
    again = coll.add_images([photo_dir], workers=0)
    assert (again.encoded, again.skipped) == (0, 3)
    # A fixed file is picked up, and leaves the skipped list.
    make_photo(photo_dir / "text.png", seed=77, fmt="PNG")
    fixed = coll.add_images([photo_dir], workers=0)
    assert fixed.encoded == 1 and coll.info()["skipped"] == 2


def test_pool_and_inline_decoding_give_the_same_vectors(tmp_path, tiny_clip_spec):
    folder = tmp_path / "many"
    for i in range(24):
        make_photo(folder / f"p{i:02d}.jpg", size=(90, 60), seed=i)
    with Collection.create(tmp_path / "a", model=tiny_clip_spec) as a, \
            Collection.create(tmp_path / "b", model=tiny_clip_spec) as b:
        a.add_images([folder], workers=0, batch_size=5)
        b.add_images([folder], workers=2, batch_size=7)
        paths = sorted(str(p) for p in folder.iterdir())
        va, vb = a.vectors_for_paths(paths), b.vectors_for_paths(paths)
        assert len(va) == 24
        for p in paths:
            assert np.allclose(va[p], vb[p], atol=1e-6)


def test_search_kinds(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    coll.add_texts(["a dog", "a cat", "a red car"], metadata=[{"n": 1}, {"n": 2}, {"n": 3}])
    query = photo_dir / "img_04.jpg"
    image_hits = coll.search(image=query, k=3)
    assert image_hits[0].path == str(query) and image_hits[0].score == pytest.approx(1, abs=2e-3)
    assert [h.score for h in image_hits] == sorted((h.score for h in image_hits), reverse=True)
    text_hits = coll.search("a dog", k=20)
    assert len(text_hits) == 12 and all(h.kind == "image" for h in text_hits)
    to_text = coll.search(image=query, k=5, target="text")
    assert {h.text for h in to_text} == {"a dog", "a cat", "a red car"}
    assert all(h.metadata["n"] in (1, 2, 3) for h in to_text)
    # Composed queries: weight 0 is the image query, weight 1 the text query.
    pure_image = coll.search(image=query, text="a red car", text_weight=0.0, k=12)
    assert [h.id for h in pure_image] == [h.id for h in coll.search(image=query, k=12)]
    pure_text = coll.search(image=query, text="a red car", text_weight=1.0, k=12)
    assert [h.id for h in pure_text] == [h.id for h in coll.search("a red car", k=12)]


def test_composed_query_is_the_renormalised_weighted_sum(coll):
    from clipforge.search.queries import build_query

    enc = coll.encoder
    image = np.full((40, 40, 3), 200, np.uint8)
    from PIL import Image

    picture = Image.fromarray(image)
    q = build_query(enc, text="at night", image=picture, text_weight=0.3)
    expected = 0.7 * enc.encode_images([picture])[0] + 0.3 * enc.encode_texts(["at night"])[0]
    assert np.allclose(q, expected / np.linalg.norm(expected), atol=1e-5)
    assert np.linalg.norm(q) == pytest.approx(1.0, abs=1e-5)


def test_min_score_and_bad_k(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    hits = coll.search(image=photo_dir / "img_02.jpg", k=12)
    cut = hits[3].score
    filtered = coll.search(image=photo_dir / "img_02.jpg", k=12, min_score=cut)
    assert len(filtered) >= 4 and all(h.score >= cut for h in filtered)
    for bad in (0, -1, True, 2.5):
        with pytest.raises(InputError):
            coll.search("dog", k=bad)
    with pytest.raises(InputError):
        coll.search("   ")
    with pytest.raises(InputError):
        coll.search()


def test_texts_are_idempotent_and_ids_replace(coll):
    assert coll.add_texts(["one", "two"]).encoded == 2
    assert coll.add_texts(["one", "two"]).encoded == 0
    assert coll.add_texts(["first"], ids=["x"]).encoded == 1
    assert coll.add_texts(["second"], ids=["x"]).encoded == 1
    assert coll.info()["texts"] == 3
    with pytest.raises(InputError):
        coll.add_texts(["fine", "  "])


def test_model_and_dimension_mismatch_are_refused(tmp_path, tiny_clip_spec, tiny_clip_other_dir, tiny_siglip_dir):
    Collection.create(tmp_path / "c", model=tiny_clip_spec).close()
    with pytest.raises(ModelMismatchError, match="was built with"):
        Collection.open(tmp_path / "c", model=f"hf:{tiny_clip_other_dir}")
    # Same spec, but the directory now holds a model of another dimension. A collection from
    # before fingerprints (no stored one) is caught by the dimension.
    moving = tmp_path / "moving-model"
    shutil.copytree(tiny_clip_other_dir, moving)
    with Collection.create(tmp_path / "d", model=f"hf:{moving}") as d:
        d.store.db.execute("DELETE FROM meta WHERE key = 'model_fingerprint'")
    shutil.rmtree(moving)
    shutil.copytree(tiny_siglip_dir, moving)
    with Collection.open(tmp_path / "d") as d, pytest.raises(ModelMismatchError, match="32-d vectors but collection d holds 16-d"):
        d.search("dog")


def test_a_model_retrained_under_the_same_spec_is_refused(tmp_path, photo_dir, tiny_clip_dir, tiny_clip_other_dir):
    # Same spec, same dimension, other weights: only the fingerprint tells.
    model = tmp_path / "runs" / "final"
    shutil.copytree(tiny_clip_dir, model)
    with Collection.create(tmp_path / "c", model=f"hf:{model}") as c:
        c.add_images([photo_dir], workers=0)
        assert c.search("dog", k=1)
        assert not c.model_changed()
    shutil.rmtree(model)
    shutil.copytree(tiny_clip_other_dir, model)
    with Collection.open(tmp_path / "c") as c:
        assert c.model_changed()
        with pytest.raises(ModelMismatchError, match="have changed since collection c was built"):
            c.search("dog")
        with pytest.raises(ModelMismatchError, match="have changed"):
            c.add_images([make_photo(tmp_path / "new.png", seed=99)], workers=0)
    shutil.rmtree(model)
    shutil.copytree(tiny_clip_dir, model)  # the original weights back: the vectors fit again
    with Collection.open(tmp_path / "c") as c:
        assert not c.model_changed() and c.search("dog", k=1)


def test_open_missing_and_create_twice(tmp_path, tiny_clip_spec):
    with pytest.raises(NotFoundError):
        Collection.open(tmp_path / "nothing")
    Collection.create(tmp_path / "c", model=tiny_clip_spec).close()
    with pytest.raises(InputError, match="already exists"):
        Collection.create(tmp_path / "c", model=tiny_clip_spec)
    with pytest.raises(InputError):
        Collection.open_or_create(tmp_path / "new")


def test_derived_index_can_be_deleted(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    before = [h.id for h in coll.search("a photo", k=5)]
    assert list((coll.path / "index").glob("image-*.faiss"))
    shutil.rmtree(coll.path / "index")
    with Collection.open(coll.path) as fresh:
        assert [h.id for h in fresh.search("a photo", k=5)] == before


def test_a_second_writer_is_refused(coll, photo_dir):
    with Collection.open(coll.path) as other, other.writing():
        with pytest.raises(CollectionError, match="another process"):
            coll.add_images([photo_dir], workers=0)


def test_bad_sources(coll, tmp_path):
    with pytest.raises(NotFoundError):
        coll.add_images([tmp_path / "missing"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no image files"):
        coll.add_images([tmp_path / "empty"])
    (tmp_path / "dir.jpg").mkdir()
    with pytest.raises(InputError):
        coll.add_images([tmp_path / "dir.jpg"])


def test_schema_version_is_checked(coll):
    coll.store.set_meta("schema_version", 99)
    with pytest.raises(CollectionError, match="schema version"):
        Collection.open(coll.path)


def test_a_text_that_is_not_valid_unicode_is_refused(coll):
    with pytest.raises(InputError, match="text 2 is not valid Unicode"):
        coll.add_texts(["fine", "caf\udce9"])
    assert coll.info()["texts"] == 0


def test_a_version_1_collection_is_upgraded_on_open_and_filters_work(tmp_path, tiny_clip_spec, photo_dir):
    with Collection.create(tmp_path / "old", model=tiny_clip_spec) as c:
        c.add_images([photo_dir])
        c.add_texts(["a red car", "a blue bird"], metadata=[{"shard": 1}, {"shard": 2}])
        before = [h.id for h in c.search("a photo", k=20)]
        db = c.store.db  # what version 1 wrote: no changed_at, no typed values
        db.execute("DROP INDEX items_changed")
        db.execute("DROP TABLE item_values")
        db.execute("ALTER TABLE items DROP COLUMN changed_at")
        db.execute("ALTER TABLE items DROP COLUMN meta_signature")
        c.store.set_meta("schema_version", 1)
    with Collection.open(tmp_path / "old") as c:
        assert c.store.get_meta("schema_version") == str(SCHEMA_VERSION)
        assert [h.id for h in c.search("a photo", k=20)] == before
        assert [h.text for h in c.search("x", target="text", where="shard=2")] == ["a blue bird"]
        assert len(c.search("x", where="width>0", k=50)) == 12, "image metadata is typed too"


def test_every_change_is_stamped_with_the_generation_of_its_commit(coll, photo_dir):
    coll.add_images([photo_dir], workers=0)
    first = coll.store.generation
    stamps = dict(coll.store.db.execute("SELECT key, changed_at FROM items").fetchall())
    assert set(stamps.values()) == {first}
    (photo_dir / "img_03.jpg").unlink()
    make_photo(photo_dir / "img_04.jpg", seed=404)  # new content under an old name
    coll.add_images([photo_dir], workers=0)
    later = dict(coll.store.db.execute("SELECT key, changed_at FROM items").fetchall())
    changed = {key for key in later if later[key] != first}
    assert changed == {str(photo_dir / "img_03.jpg"), str(photo_dir / "img_04.jpg")}
    assert all(later[key] > first for key in changed)


def test_a_process_that_joined_a_discarded_collection_writes_nothing_and_says_so(tmp_path, tiny_clip_spec):
    from clipforge.index import opening

    created = Collection.create(tmp_path / "new", model=tiny_clip_spec)
    joined = Collection.open(tmp_path / "new")  # as a second process would, before the first is refused
    assert opening.discard_if_empty(created)
    assert not (tmp_path / "new").exists()
    with pytest.raises(CollectionError, match="removed or replaced by another process"):
        joined.add_texts(["a cat"])
    joined.close()
    assert not (tmp_path / "new").exists()
