"""A model's fingerprint: a hash of the files that hold its weights.

A collection stores the fingerprint of the model that embedded it. A spec names a model but
not its weights: ``builtin:demo`` is retrained between releases, a local directory is
overwritten by the next training run, and a hub id moves to a new revision. Vectors from the
old weights are not comparable with queries from the new ones, and the dimension alone does
not tell (a retrained model often keeps it), so the weights themselves are compared.

Hashing reads every weight file once (about a second per gigabyte); it happens when a
collection is created and when a collection first loads its model, not per query.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .spec import ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5")
_CHUNK = 8 << 20


def _weight_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
    config = folder / "config.json"  # a changed architecture with the same weight file names
    return sorted(files + ([config] if config.is_file() else []))


def _spec_folders(spec: ModelSpec) -> list[Path] | None:
    """The folders whose weight files make the model, or None where they cannot be found."""
    if spec.scheme == "builtin":
        from .builtin import builtin_dir, text_package_dir

        folder = builtin_dir(spec.target)
        return [folder, text_package_dir(folder)]
    if spec.is_local:
        return [Path(spec.target)]
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    config = try_to_load_from_cache(spec.target, "config.json")
    return [Path(config).parent] if isinstance(config, (str, os.PathLike)) else None


def model_fingerprint(spec: ModelSpec) -> str | None:
    """``sha256:<hex>`` over the weight files' names and contents; None where the files are
    not on this machine (a hub model not in the local cache)."""
    folders = _spec_folders(spec)
    if not folders:
        return None
    digest = hashlib.sha256()
    for folder in folders:
        for path in _weight_files(folder):
            digest.update(path.name.encode() + b"\0")
            with open(path, "rb") as f:
                while chunk := f.read(_CHUNK):
                    digest.update(chunk)
    return "sha256:" + digest.hexdigest()[:32]
