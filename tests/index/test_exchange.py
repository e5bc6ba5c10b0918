"""Embeddings in and out in clip-retrieval's layout, on real .npy and Parquet files."""

from __future__ import annotations

import hashlib
import json

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from clipforge import Collection
from clipforge.errors import InputError, ModelMismatchError, NotFoundError


def write_layout(root, parts, texts=True):
    """What clip-retrieval's writer writes: per partition, float16 img_emb/text_emb and a metadata
    table (image_path, caption, then the samples' .json keys)."""
    for name, (images, text_vectors, rows) in parts.items():
        (root / "img_emb").mkdir(parents=True, exist_ok=True)
        (root / "metadata").mkdir(parents=True, exist_ok=True)
        np.save(root / "img_emb" / f"img_emb_{name}.npy", images.astype(np.float16))
        if texts:
            (root / "text_emb").mkdir(parents=True, exist_ok=True)
            np.save(root / "text_emb" / f"text_emb_{name}.npy", text_vectors.astype(np.float16))
        pq.write_table(pa.Table.from_pylist(rows), root / "metadata" / f"metadata_{name}.parquet")
    return root


def unit(rng, n, dim):
    v = rng.normal(size=(n, dim)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


@pytest.fixture
def dataset(tmp_path, tiny_clip_spec):
    """Two partitions of 5 and 3 samples: random image vectors, captions encoded by the tiny model."""
    with Collection.create(tmp_path / "encoder-only", model=tiny_clip_spec) as c:
        encoder = c.encoder
    rng = np.random.default_rng(0)
    parts = {}
    number = 0
    for name, n in (("0", 5), ("1", 3)):
        captions = [f"a photo of thing {number + i}" for i in range(n)]
        rows = [{"image_path": f"{number + i:09d}", "caption": captions[i], "url": f"http://example.com/{number + i}.jpg",
                 "width": 640 + i, "NSFW": "UNLIKELY"} for i in range(n)]
        parts[name] = (unit(rng, n, encoder.dim), encoder.encode_texts(captions), rows)
        number += n
    return write_layout(tmp_path / "laion-part", parts)


def files_of(collection_path):
    return {p.relative_to(collection_path): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(collection_path.rglob("*")) if p.is_file() and not p.name.endswith(("-shm", ".lock"))}


def test_import_makes_image_and_caption_items_with_their_metadata(tmp_path, tiny_clip_spec, dataset):
    with Collection.create(tmp_path / "laion", model=tiny_clip_spec) as coll:
        report = coll.import_embeddings(dataset, batch_size=3)
        assert (report.images, report.texts, report.partitions, report.key_column) == (8, 8, 2, "image_path")
        assert report.model_check > 0.99
        info = coll.info()
        assert (info["images"], info["texts"], info["vector_rows"]) == (8, 8, 16)
        given = np.load(dataset / "img_emb" / "img_emb_1.npy")
        item = coll.store.items_by_key(["import:laion-part:000000006"])["import:laion-part:000000006"]
        assert item.metadata == {"image_path": "000000006", "caption": "a photo of thing 6", "NSFW": "UNLIKELY",
                                 "url": "http://example.com/6.jpg", "width": 641}
        assert np.array_equal(coll.read_vectors([item.vector_row], normalized=False)[0], given[1])  # bit for bit
        hit = coll.search_vectors(given[1:2].astype(np.float32), k=1)[0][0]
        assert hit.metadata["url"] == "http://example.com/6.jpg"
        [caption] = coll.search("a photo of thing 6", target="text", k=1)
        assert caption.text == "a photo of thing 6" and caption.score > 0.99
        assert [h.metadata["image_path"] for h in coll.search_vectors(given[1:2].astype(np.float32), k=8,
                                                                      where="width>=641")[0]][0] == "000000006"


def test_reimport_adds_nothing_and_an_interrupted_import_resumes(tmp_path, tiny_clip_spec, dataset):
    with Collection.create(tmp_path / "laion", model=tiny_clip_spec) as coll:
        calls = []

        def stop_after_first_batch(done, total):
            calls.append(done)
            raise KeyboardInterrupt  # as a Ctrl-C (or a kill) between two batches

        with pytest.raises(KeyboardInterrupt):
            coll.import_embeddings(dataset, batch_size=2, on_progress=stop_after_first_batch)
        assert coll.info()["images"] == 2 and coll.info()["vector_rows"] == 4
        resumed = coll.import_embeddings(dataset, batch_size=2)
        assert (resumed.images, resumed.texts, resumed.unchanged) == (6, 6, 4)
        assert coll.info()["vector_rows"] == 16  # nothing written twice
        before = files_of(coll.path)
        again = coll.import_embeddings(dataset)
        assert (again.images, again.texts, again.partitions_unchanged) == (0, 0, 2)
        assert files_of(coll.path) == before


def test_round_trip_gives_identical_search_results(tmp_path, tiny_clip_spec, photo_dir):
    with Collection.create(tmp_path / "pics", model=tiny_clip_spec) as pics:
        pics.add_images([photo_dir], workers=0)
        report = pics.export_embeddings(tmp_path / "out", rows_per_file=5)
        queries = np.stack([pics.query_vector(text=t) for t in ("red", "a wide picture", "blue sky")])
        expected = pics.search_vectors(queries, k=12)
        stored = pics.vectors_for_paths([photo_dir / "img_03.jpg"])[str(photo_dir / "img_03.jpg")]
    assert (report.rows, report.files, report.kind) == (12, 3, "image")
    out = tmp_path / "out"
    # As clip-retrieval's back end and autofaiss read it: files in sorted order, row for row.
    npys = sorted((out / "img_emb").glob("*.npy"))
    assert [p.name for p in npys] == ["img_emb_0.npy", "img_emb_1.npy", "img_emb_2.npy"]
    vectors = np.concatenate([np.load(p) for p in npys])
    metadata = pa.concat_tables([pq.read_table(p) for p in sorted((out / "metadata").glob("*.parquet"))]).to_pylist()
    assert vectors.dtype == np.float16 and vectors.shape == (12, pics.dim) and len(metadata) == 12
    row = [m["image_path"] for m in metadata].index(str(photo_dir / "img_03.jpg"))
    assert np.allclose(vectors[row].astype(np.float32), stored, atol=1e-3)
    assert not (out / "text_emb").exists()
    with Collection.create(tmp_path / "copy", model=tiny_clip_spec) as copy:
        imported = copy.import_embeddings(out)
        assert (imported.images, imported.key_column, imported.model_check) == (12, "image_path", None)
        got = copy.search_vectors(queries, k=12)
    for theirs, ours in zip(expected, got):
        assert [h.path for h in theirs] == [h.metadata["image_path"] for h in ours]
        assert [h.score for h in theirs] == [h.score for h in ours]


def test_paired_export_writes_text_emb_and_reads_back_bit_for_bit(tmp_path, tiny_clip_spec, dataset):
    with Collection.create(tmp_path / "laion", model=tiny_clip_spec) as coll:
        coll.import_embeddings(dataset)
        report = coll.export_embeddings(tmp_path / "out", dtype="float16")
    assert (report.rows, report.texts, report.texts_left_out) == (8, 8, 0)
    given = np.concatenate([np.load(dataset / "img_emb" / f"img_emb_{n}.npy") for n in "01"])
    given_text = np.concatenate([np.load(dataset / "text_emb" / f"text_emb_{n}.npy") for n in "01"])
    assert np.array_equal(np.load(tmp_path / "out" / "img_emb" / "img_emb_0.npy"), given)
    assert np.array_equal(np.load(tmp_path / "out" / "text_emb" / "text_emb_0.npy"), given_text)
    rows = pq.read_table(tmp_path / "out" / "metadata" / "metadata_0.parquet").to_pylist()
    assert rows[6] == {"image_path": "000000006", "caption": "a photo of thing 6", "NSFW": "UNLIKELY",
                       "url": "http://example.com/6.jpg", "width": 641}


def test_texts_alone_export_as_clip_retrieval_text_only_layout(tmp_path, tiny_clip_spec):
    with Collection.create(tmp_path / "texts", model=tiny_clip_spec) as coll:
        coll.add_texts(["a cat", "a dog"], metadata=[{"lang": "en"}, {"lang": "fr"}])
        report = coll.export_embeddings(tmp_path / "out", dtype="float32")
    assert (report.kind, report.rows) == ("text", 2)
    assert np.load(tmp_path / "out" / "text_emb" / "text_emb_0.npy").dtype == np.float32
    assert pq.read_table(tmp_path / "out" / "metadata" / "metadata_0.parquet").to_pylist() == [
        {"caption": "a cat", "lang": "en"}, {"caption": "a dog", "lang": "fr"}]


def test_export_refuses_a_folder_in_use(tmp_path, tiny_clip_spec, photo_dir):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "mine.txt").write_text("keep me")
    with Collection.create(tmp_path / "pics", model=tiny_clip_spec) as pics:
        pics.add_images([photo_dir], workers=0)
        with pytest.raises(InputError, match="not an empty folder"):
            pics.export_embeddings(tmp_path / "out")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["mine.txt"]


def _nan(root):
    vectors = np.load(root / "img_emb" / "img_emb_1.npy")
    vectors[2, 5] = np.nan
    np.save(root / "img_emb" / "img_emb_1.npy", vectors)


def _truncated(root):
    path = root / "img_emb" / "img_emb_1.npy"
    path.write_bytes(path.read_bytes()[:-10])


def _long(root):
    np.save(root / "text_emb" / "text_emb_0.npy", np.load(root / "text_emb" / "text_emb_0.npy") * 3)


def _duplicate(root):
    rows = pq.read_table(root / "metadata" / "metadata_1.parquet").to_pylist()
    rows[0]["image_path"] = "000000002"
    pq.write_table(pa.Table.from_pylist(rows), root / "metadata" / "metadata_1.parquet")


def _short_metadata(root):
    rows = pq.read_table(root / "metadata" / "metadata_1.parquet").to_pylist()
    pq.write_table(pa.Table.from_pylist(rows[:-1]), root / "metadata" / "metadata_1.parquet")


@pytest.mark.parametrize("damage, error, message", [
    (lambda r: (r / "metadata" / "metadata_1.parquet").unlink(), InputError,
     r"metadata/metadata_1.parquet is missing \(it holds the rows of img_emb/img_emb_1.npy\)"),
    (_nan, InputError, r"img_emb/img_emb_1.npy: vector 2 is not finite"),
    (_truncated, InputError, r"img_emb/img_emb_1.npy is truncated: its header promises 3 vectors"),
    (_long, InputError, r"text_emb/text_emb_0.npy: vector 0 has length 3, not 1"),
    (lambda r: np.save(r / "img_emb" / "img_emb_1.npy", np.ones((3, 7), np.float16) / np.sqrt(7)), ModelMismatchError,
     r"img_emb/img_emb_1.npy holds 7-d vectors but collection laion holds \d+-d ones"),
    (_duplicate, InputError, r"image_path '000000002' names two rows \(metadata/metadata_0.parquet row 2 and "
                             r"metadata/metadata_1.parquet row 0\)"),
    (_short_metadata, InputError, r"metadata/metadata_1.parquet has 2 rows but its embeddings hold 3 vectors"),
    (lambda r: (r / "metadata" / "metadata_0.parquet").write_bytes(b"PAR1 not really"), InputError,
     r"metadata/metadata_0.parquet is not a readable Parquet file"),
])
def test_bad_embeddings_are_refused_with_one_line_and_change_nothing(tmp_path, tiny_clip_spec, dataset, damage,
                                                                     error, message):
    with Collection.create(tmp_path / "laion", model=tiny_clip_spec) as coll:
        coll.import_embeddings(dataset)  # a first import: the refused one must not touch it
        damage(dataset)
        before = files_of(coll.path)
        with pytest.raises(error, match=message) as refused:
            coll.import_embeddings(dataset)
        assert "\n" not in str(refused.value)
        assert files_of(coll.path) == before
        assert coll.info()["images"] == 8


def test_embeddings_of_another_model_are_refused(tmp_path, tiny_clip_other_dir, dataset):
    with Collection.create(tmp_path / "other", model=f"hf:{tiny_clip_other_dir}") as coll:
        before = files_of(coll.path)
        with pytest.raises(ModelMismatchError, match="do not come from .* median cosine of"):
            coll.import_embeddings(dataset)
        assert files_of(coll.path) == before
        assert coll.import_embeddings(dataset, check_model_vectors=False).images == 8


def test_keys_by_row_when_no_column_names_a_sample(tmp_path, tiny_clip_spec):
    rng = np.random.default_rng(1)
    with Collection.create(tmp_path / "c", model=tiny_clip_spec) as coll:
        root = write_layout(tmp_path / "emb", {"00": (unit(rng, 2, coll.dim), None, [{"score": 1.5}, {"score": 2}])},
                            texts=False)
        report = coll.import_embeddings(root, source="mine")
        assert report.key_column == "row"
        assert set(coll.store.items_by_key(["import:mine:00#0", "import:mine:00#1"])) == {"import:mine:00#0",
                                                                                         "import:mine:00#1"}
        with pytest.raises(InputError, match="--key-column nope: not a column of every metadata file"):
            coll.import_embeddings(root, key_column="nope")
        with pytest.raises(NotFoundError):
            coll.import_embeddings(tmp_path / "nowhere")
        with pytest.raises(InputError, match="not clip-retrieval's embeddings layout"):
            coll.import_embeddings(tmp_path)


def test_cli_import_and_export(run_cli, tiny_clip_spec, dataset, tmp_path):
    imported = run_cli("import-embeddings", dataset, "-c", "laion", "--model", tiny_clip_spec, "--json", check=True).json()
    assert (imported["images"], imported["texts"]) == (8, 8)
    exported = run_cli("export-embeddings", "-c", "laion", tmp_path / "out", "--json", check=True).json()
    assert (exported["rows"], exported["texts"], exported["files"]) == (8, 8, 1)
    again = run_cli("export-embeddings", "-c", "laion", tmp_path / "out")
    assert again.returncode == 2 and again.stderr.count("\n") == 1 and "not an empty folder" in again.stderr
    _nan(dataset)
    refused = run_cli("import-embeddings", dataset, "-c", "fresh", "--model", tiny_clip_spec)
    assert refused.returncode == 2 and refused.stderr.count("\n") == 1, refused
    assert "vector 2 is not finite" in refused.stderr
    missing = run_cli("info", "-c", "fresh")  # the refused import created nothing
    assert missing.returncode == 3 and "no collection 'fresh'" in missing.stderr, missing
    assert json.loads(run_cli("info", "-c", "laion", "--json", check=True).stdout)["images"] == 8
