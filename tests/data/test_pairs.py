"""Reading image-text pairs from every supported source, built as real files."""

from __future__ import annotations

import functools
import http.server
import io
import json
import tarfile
import threading

import pytest

from clipforge.models.images import decode_bytes
from clipforge.data.pairs import ImageLocation, expand_braces, load_pairs
from clipforge.errors import ImageDecodeError, InputError, NotFoundError
from conftest import make_photo


def _write_csv(path, header, rows, delimiter=","):
    lines = [delimiter.join(header)] + [delimiter.join(r) for r in rows]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture
def dataset(tmp_path):
    root = tmp_path / "ds"
    for i in range(4):
        make_photo(root / "img" / f"{i}.jpg", seed=i)
    _write_csv(
        root / "pairs.csv",
        ["image", "caption", "split", "label", "lang"],
        [
            ["img/0.jpg", "a dog", "train", "dog", "en"],
            ["img/0.jpg", "un chien", "train", "dog", "fr"],
            ["img/0.jpg", "a brown dog", "train", "dog", ""],
            ["img/1.jpg", "a cat", "train", "cat", "en"],
            ["img/2.jpg", "a bird", "val", "bird", "en"],
            ["img/3.jpg", "a car", "test", "car", "en"],
        ],
    )
    return root


def test_pair_dataset_groups_captions_and_filters_splits(dataset):
    train = load_pairs(dataset, "train")
    assert train.has_splits and len(train) == 2 and train.n_captions == 4
    dog = next(p for p in train.pairs if p.label == "dog")
    assert dog.captions == ("a dog", "un chien", "a brown dog")
    assert decode_bytes(dog.image.read()).size == (64, 48)
    assert [p.label for p in load_pairs(dataset, "val").pairs] == ["bird"]
    assert len(load_pairs(dataset)) == 4
    english = load_pairs(dataset, "train", lang="en")
    assert next(p for p in english.pairs if p.label == "dog").captions == ("a dog", "a brown dog")


def test_tables_with_named_columns_tsv_and_parquet(tmp_path):
    make_photo(tmp_path / "a.jpg", seed=1)
    make_photo(tmp_path / "b.png", seed=2)
    _write_csv(tmp_path / "t.tsv", ["file", "text"], [["a.jpg", "first"], ["b.png", "second"]], "\t")
    pairs = load_pairs(tmp_path / "t.tsv", image_column="file", caption_column="text")
    assert not pairs.has_splits and [p.captions for p in pairs.pairs] == [("first",), ("second",)]
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    table = pa.table({"path": ["a.jpg", "b.png", "a.jpg", None], "cap": ["x", None, "y", "z"]})
    pq.write_table(table, tmp_path / "t.parquet")
    pairs = load_pairs(tmp_path / "t.parquet", image_column="path", caption_column="cap")
    assert [p.captions for p in pairs.pairs] == [("x", "y")]
    assert pairs.skipped == {"empty caption": 1, "no image": 1}


def test_null_captions_are_skipped_and_counted(tmp_path):
    make_photo(tmp_path / "a.jpg")
    _write_csv(tmp_path / "t.csv", ["image", "caption"], [["a.jpg", "ok"], ["a.jpg", ""], ["a.jpg", "  "]])
    pairs = load_pairs(tmp_path / "t.csv")
    assert pairs.n_captions == 1 and pairs.skipped["empty caption"] == 2


def test_a_table_without_the_named_columns_is_refused(tmp_path):
    _write_csv(tmp_path / "t.csv", ["path", "text"], [["a.jpg", "x"]])
    with pytest.raises(InputError, match=r"no column 'image', 'caption' \(columns: path, text\)"):
        load_pairs(tmp_path / "t.csv")


def test_a_missing_source_is_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        load_pairs(tmp_path / "nope")
    with pytest.raises(NotFoundError, match="shard .*s-000.tar does not exist"):
        load_pairs(str(tmp_path / "s-{000..002}.tar"))


def test_sidecar_captions(tmp_path):
    make_photo(tmp_path / "a.jpg", seed=1)
    (tmp_path / "a.txt").write_text("one\n\ntwo\n")
    make_photo(tmp_path / "sub" / "b.png", seed=2)
    (tmp_path / "sub" / "b.json").write_text(json.dumps({"caption": "three"}))
    make_photo(tmp_path / "c.jpg", seed=3)
    (tmp_path / "c.json").write_text(json.dumps({"captions": ["four", "five"]}))
    make_photo(tmp_path / "lonely.jpg", seed=4)
    pairs = load_pairs(tmp_path)
    assert sorted(p.captions for p in pairs.pairs) == [("four", "five"), ("one", "two"), ("three",)]
    assert pairs.skipped == {"no caption": 1}


def _shard(path, samples):
    with tarfile.open(path, "w") as tar:
        for name, data in samples:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


def _jpeg(tmp_path, seed) -> bytes:
    return make_photo(tmp_path / f"src{seed}.jpg", seed=seed).read_bytes()


def test_webdataset_shards_brace_patterns_and_pipes(tmp_path):
    for s in range(2):
        _shard(tmp_path / f"shard-{s:03d}.tar", [
            (f"x/{s}a.jpg", _jpeg(tmp_path, s)), (f"x/{s}a.txt", f"caption {s}a".encode()),
            (f"x/{s}b.png", _jpeg(tmp_path, s + 10)), (f"x/{s}b.json", json.dumps({"captions": [f"c{s}", "d"]}).encode()),
            (f"x/{s}c.jpg", _jpeg(tmp_path, s + 20)),  # no caption: skipped
        ])
    pairs = load_pairs(str(tmp_path / "shard-{000..001}.tar"))
    assert sorted(p.captions for p in pairs.pairs) == [("c0", "d"), ("c1", "d"), ("caption 0a",), ("caption 1a",)]
    assert pairs.skipped == {"empty caption": 2}
    member = next(p for p in pairs.pairs if p.captions == ("caption 1a",)).image
    assert member.read() == _jpeg(tmp_path, 1) and member.name.endswith("shard-001.tar:x/1a.jpg")
    assert len(load_pairs(tmp_path)) == 4  # a folder of shards
    piped = load_pairs(f"pipe:cat {tmp_path}/shard-000.tar")
    assert sorted(p.captions for p in piped.pairs) == [("c0", "d"), ("caption 0a",)]
    assert piped.pairs[0].image.read()[:2] == b"\xff\xd8"


def test_an_empty_shard_is_refused(tmp_path):
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(InputError, match="empty shard"):
        load_pairs(tmp_path / "empty.tar")
    _shard(tmp_path / "nofiles.tar", [])
    with pytest.raises(InputError, match="empty shard"):
        load_pairs(tmp_path / "nofiles.tar")
    with pytest.raises(InputError, match="empty shard"):
        load_pairs("pipe:true")


def test_expand_braces():
    assert expand_braces("a-{08..11}.tar") == ["a-08.tar", "a-09.tar", "a-10.tar", "a-11.tar"]
    assert expand_braces("{x,y}/{1..2}") == ["x/1", "x/2", "y/1", "y/2"]
    assert expand_braces("plain.tar") == ["plain.tar"]


def test_urls_are_fetched_when_read_and_failures_are_bad_samples(tmp_path):
    make_photo(tmp_path / "served" / "p.jpg", seed=5)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp_path / "served"))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{server.server_address[1]}"
        _write_csv(tmp_path / "t.csv", ["image", "caption"], [[f"{base}/p.jpg", "ok"], [f"{base}/gone.jpg", "bad"]])
        pairs = load_pairs(tmp_path / "t.csv")
        assert pairs.pairs[0].image.read() == (tmp_path / "served" / "p.jpg").read_bytes()
        with pytest.raises(ImageDecodeError, match="cannot fetch"):
            pairs.pairs[1].image.read()
    finally:
        server.shutdown()
    with pytest.raises(ImageDecodeError, match="file not found"):
        ImageLocation(str(tmp_path / "missing.jpg")).read()
