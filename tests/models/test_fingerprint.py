"""Model fingerprints: remembered for unchanged files, computed again for any write."""

from __future__ import annotations

import json
import os
import shutil

import pytest

from clipforge.models import fingerprint
from clipforge.models.fingerprint import model_fingerprint
from clipforge.models.spec import parse_spec


@pytest.fixture
def model(tmp_path, tiny_clip_dir, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    shutil.copytree(tiny_clip_dir, tmp_path / "model")
    # The copy was written just now; files written within the last 2 s are never remembered.
    monkeypatch.setattr(fingerprint, "_SETTLE_NS", 0)
    return tmp_path / "model"


def test_files_written_a_moment_ago_are_not_remembered(model, tmp_path, monkeypatch):
    monkeypatch.setattr(fingerprint, "_SETTLE_NS", 2_000_000_000)
    assert model_fingerprint(parse_spec(f"hf:{model}")) is not None
    assert not _cache(tmp_path).exists()


def _cache(tmp_path):
    return tmp_path / "cache" / "clipforge" / "fingerprints.json"


def test_an_unchanged_model_is_not_hashed_again(model, tmp_path):
    spec = parse_spec(f"hf:{model}")
    first = model_fingerprint(spec)
    entries = json.loads(_cache(tmp_path).read_text())
    assert list(entries.values()) == [first]
    # What the cache says is what comes back: the files were not read again.
    _cache(tmp_path).write_text(json.dumps({key: "sha256:remembered" for key in entries}))
    assert model_fingerprint(spec) == "sha256:remembered"


def test_a_weight_file_rewritten_with_its_size_and_mtime_kept_is_hashed_again(model, tmp_path):
    spec = parse_spec(f"hf:{model}")
    first = model_fingerprint(spec)
    weights = next(model.glob("*.safetensors"))
    stat = weights.stat()
    data = bytearray(weights.read_bytes())
    data[-1] ^= 0xFF
    with open(weights, "r+b") as f:  # in place: same inode, same size
        f.write(data)
    os.utime(weights, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert model_fingerprint(spec) != first


def test_a_cache_that_cannot_be_written_is_no_cache(model, tmp_path):
    (tmp_path / "cache").write_text("a file where the folder would go")
    spec = parse_spec(f"hf:{model}")
    assert model_fingerprint(spec) == model_fingerprint(spec) is not None
