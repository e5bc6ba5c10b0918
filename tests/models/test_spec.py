"""Model spec strings."""

from __future__ import annotations

import os

import pytest

from clipforge.errors import ModelLoadError
from clipforge.models import ModelSpec, load_encoder, parse_spec


@pytest.mark.parametrize("target", ["org/name", "openai/clip-vit-base-patch32", "google/siglip-base-patch16-224", "name"])
def test_hub_id(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)  # no local directory of that name here
    spec = parse_spec(f"hf:{target}")
    assert spec == ModelSpec("hf", target)
    assert not spec.is_local
    assert str(spec) == f"hf:{target}"


def test_absolute_directory(tmp_path):
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    spec = parse_spec(f"hf:{model_dir}")
    assert spec == ModelSpec("hf", str(model_dir.resolve()))
    assert spec.is_local


@pytest.mark.parametrize("relative", ["runs/x/final", "model", "org/name", "./runs/x/final", "runs/x/../x/final"])
def test_existing_relative_directory_is_made_absolute(tmp_path, monkeypatch, relative):
    # A collection records the spec; it must reopen from any working directory.
    for sub in ("runs/x/final", "model", "org/name"):
        (tmp_path / sub).mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    spec = parse_spec(f"hf:{relative}")
    assert spec.is_local
    assert os.path.isabs(spec.target)
    assert spec.target == str((tmp_path / relative).resolve())
    monkeypatch.chdir("/")
    assert parse_spec(str(spec)) == spec


def test_home_directory_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "models" / "clip").mkdir(parents=True)
    spec = parse_spec("hf:~/models/clip")
    assert spec.target == str((tmp_path / "models" / "clip").resolve())


@pytest.mark.parametrize("target", ["./missing", "../missing/model", "~/no-such-dir-here", "/no/such/model", "runs/x/final"])
def test_missing_directory(tmp_path, monkeypatch, target):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ModelLoadError, match="does not exist"):
        parse_spec(f"hf:{target}")


def test_builtin():
    spec = parse_spec("builtin:demo")
    assert spec == ModelSpec("builtin", "demo")
    assert not spec.is_local
    assert str(spec) == "builtin:demo"


def test_unknown_builtin_cannot_be_loaded():
    with pytest.raises(ModelLoadError, match="no builtin model named 'nope'"):
        load_encoder("builtin:nope")


@pytest.mark.parametrize("bad", ["garbage", "", "hf:", "builtin:", "s3:bucket/model", "HF:org/name", ":org/name", None, 42])
def test_garbage(bad):
    with pytest.raises(ModelLoadError, match="bad model spec"):
        parse_spec(bad)


def test_spec_object_is_accepted_as_is():
    spec = ModelSpec("builtin", "x")
    with pytest.raises(ModelLoadError, match="no builtin model named 'x'"):
        load_encoder(spec)
