"""The one tar-shard reader that training and evaluation share, on real tar files."""

from __future__ import annotations

import gzip
import io
import tarfile

import pytest

from clipforge.data.pairs import load_pairs
from clipforge.data.shards import iter_members
from clipforge.errors import ImageDecodeError, InputError
from clipforge.eval.webdataset import iter_samples


def _shard(path, members):
    with tarfile.open(path, "w") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_members_are_keyed_as_webdataset_keys_them(tmp_path):
    shard = _shard(tmp_path / "s.tar", [
        ("dir/a.b.JPG", b"image"), ("dir/a.b.txt", b"caption"), ("README", b"x"), ("dir/._a.jpg", b"junk"),
    ])
    members = list(iter_members(str(shard), keep=("b.txt",)))
    assert [(m.key, m.ext) for m in members] == [("dir/a", "b.jpg"), ("dir/a", "b.txt")]
    assert members[0].data is None and members[1].data == b"caption"  # kept: read in the same pass
    assert members[0].read() == b"image"


def test_training_and_evaluation_read_the_same_member(tmp_path):
    shard = _shard(tmp_path / "s.tar", [("k.jpg", b"\xff\xd8jpeg"), ("k.txt", b"a cat\n")])
    [pair] = load_pairs(shard).pairs
    [sample] = list(iter_samples(shard))
    assert pair.image == sample.image()
    assert pair.image.read() == sample.image().read() == b"\xff\xd8jpeg"


def test_compressed_and_damaged_shards_are_refused(tmp_path):
    plain = _shard(tmp_path / "s.tar", [("k.jpg", b"image"), ("k.txt", b"a cat")])
    # Offsets into a compressed file would read garbage, so such a shard must fail loudly.
    (tmp_path / "gz.tar").write_bytes(gzip.compress(plain.read_bytes()))
    with pytest.raises(InputError, match="not a readable tar shard"):
        load_pairs(tmp_path / "gz.tar")
    with pytest.raises(InputError, match="not a readable tar shard"):
        list(iter_samples(tmp_path / "gz.tar"))
    [pair] = load_pairs(plain).pairs
    plain.write_bytes(plain.read_bytes()[:514])  # cut inside the image bytes, after the first header
    with pytest.raises(ImageDecodeError, match="shard is truncated"):
        pair.image.read()
