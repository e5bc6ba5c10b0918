"""Indexing the images inside WebDataset tar shards, incrementally by shard."""

from __future__ import annotations

import io
import json
import os
import tarfile

import pytest

from clipforge import Collection
from clipforge.errors import InputError, NotFoundError
from conftest import make_photo


def write_shard(path, samples):
    """samples: key -> {ext: bytes}, written as webdataset writers do (key.ext members, in order)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(path, "w") as tar:
        for key, members in samples.items():
            for ext, data in members.items():
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def photo_bytes(tmp_path, seed):
    return make_photo(tmp_path / "src" / f"{seed}.jpg", seed=seed).read_bytes()


def sample(tmp_path, seed, caption=None, meta=None):
    members = {"jpg": photo_bytes(tmp_path, seed)}
    if caption is not None:
        members["txt"] = caption.encode()
    if meta is not None:
        members["json"] = json.dumps(meta).encode()
    return members


@pytest.fixture
def shards(tmp_path):
    folder = tmp_path / "shards"
    write_shard(folder / "00000.tar", {
        "000000000": sample(tmp_path, 1, "a red chair", {"url": "http://x/0.jpg", "width": 9999, "status": "success"}),
        "000000001": sample(tmp_path, 2, "a blue lamp"),
        "000000002": {"jpg": b"\xff\xd8 broken", "txt": b"broken"},
        "000000003": {"txt": b"text alone"},
    })
    write_shard(folder / "00001.tar", {
        "000000004": sample(tmp_path, 3, "a green sofa", {"url": "http://x/4.jpg"}),
        "000000005": {**sample(tmp_path, 4, "bad json"), "json": b"{not json"},
    })
    return folder


@pytest.fixture
def coll(tmp_path, tiny_clip_spec):
    with Collection.create(tmp_path / "wds", model=tiny_clip_spec) as c:
        yield c


def test_shard_images_are_indexed_with_their_captions_and_json(coll, shards):
    report = coll.add_shards([str(shards / "{00000..00001}.tar")], workers=0)
    assert (report.encoded, report.skipped) == (4, 1)
    key = f"{shards / '00000.tar'}#000000000"
    item = coll.store.items_by_key([key])[key]
    assert item.path is None
    assert item.metadata["caption"] == "a red chair" and item.metadata["url"] == "http://x/0.jpg"
    assert item.metadata["width"] == 64  # the image's own size wins over what the json says
    assert (item.metadata["shard"], item.metadata["key"], item.metadata["status"]) == ("00000.tar", "000000000", "success")
    reasons = {f["path"]: f["reason"] for f in report.failures}
    assert reasons[f"{shards / '00000.tar'}#000000002"] == "not an image or unsupported format"
    assert reasons[f"{shards / '00001.tar'}#000000005"].startswith("its .json was ignored")
    assert [h.metadata["caption"] for h in coll.search("x", k=5, where="shard=00001.tar")] == ["a green sofa", "bad json"]
    assert {e["path"] for e in coll.info()["skipped_files"]} == {f"{shards / '00000.tar'}#000000002"}


def test_unchanged_shards_are_not_opened_and_rewritten_ones_are_read_again(tmp_path, coll, shards):
    coll.add_shards([str(shards / "00000.tar"), str(shards / "00001.tar")], workers=0)
    first = shards / "00000.tar"
    content, stat = first.read_bytes(), first.stat()
    first.write_bytes(b"\0" * len(content))  # same size and mtime, not a tar: a re-run that opened it would fail
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    again = coll.add_shards([str(shards / "{00000..00001}.tar")], workers=0)
    assert (again.encoded, again.reused, again.unchanged, again.skipped) == (0, 0, 5, 0)
    first.write_bytes(content)
    os.utime(first, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    # Rewritten: one sample gone, one new, the others the same content.
    write_shard(shards / "00001.tar", {"000000005": sample(tmp_path, 4, "kept"), "000000006": sample(tmp_path, 5, "new")})
    os.utime(shards / "00001.tar", ns=(1, 2_000_000_000))
    changed = coll.add_shards([str(shards / "{00000..00001}.tar")], workers=0)
    assert (changed.encoded, changed.reused, changed.removed, changed.unchanged) == (1, 1, 1, 3)
    assert coll.info()["images"] == 4  # 000000000 and 1, then 5 (same content, vector reused) and 6
    assert not coll.search("x", k=10, where="key=000000004")
    assert [h.metadata["caption"] for h in coll.search("x", k=10, where="key=000000005")] == ["kept"]


def test_an_interrupted_run_resumes_without_writing_twice(coll, shards):
    def stop(done, total):
        if done == 3:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        coll.add_shards([str(shards / "{00000..00001}.tar")], workers=0, batch_size=2, on_progress=stop)
    rows = coll.info()["vector_rows"]
    assert 0 < coll.info()["images"] < 4
    resumed = coll.add_shards([str(shards / "{00000..00001}.tar")], workers=0, batch_size=2)
    assert resumed.encoded + rows == 4 and coll.info()["vector_rows"] == 4 and coll.info()["images"] == 4


def test_bad_shard_specs(coll, shards, tmp_path):
    with pytest.raises(NotFoundError, match="shard .*00002.tar does not exist"):
        coll.add_shards([str(shards / "{00000..00009}.tar")])
    (tmp_path / "empty.tar").write_bytes(b"")
    with pytest.raises(InputError, match="empty shard"):
        coll.add_shards([str(tmp_path / "empty.tar")])
    with pytest.raises(InputError, match="pipe: shard cannot be read again"):
        coll.add_shards(["pipe:cat x.tar"])


def test_cli_indexes_shards_by_pattern(run_cli, tiny_clip_spec, shards):
    result = run_cli("index", shards / "{00000..00001}.tar", "-c", "wds", "--model", tiny_clip_spec,
                     "--workers", "0", "--json", check=True).json()
    assert (result["encoded"], result["skipped"]) == (4, 1)
    again = run_cli("index", shards / "00000.tar", shards / "00001.tar", "-c", "wds", "--json", check=True).json()
    assert (again["encoded"], again["unchanged"]) == (0, 5)
