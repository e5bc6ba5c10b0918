"""A model's fingerprint: a hash of the files that hold its weights.

A collection stores the fingerprint of the model that embedded it. A spec names a model but
not its weights: ``builtin:demo`` is retrained between releases, a local directory is
overwritten by the next training run, and a hub id moves to a new revision. Vectors from the
old weights are not comparable with queries from the new ones, and the dimension alone does
not tell (a retrained model often keeps it), so the weights themselves are compared.

Hashing reads every weight file (about a second per gigabyte). A fingerprint is remembered
(``$XDG_CACHE_HOME/clipforge/fingerprints.json``) under the files' paths, sizes, inodes and
modification and change times, so a command that loads an unchanged model does not read its
weights twice; any write to a file changes its change time, which no one can set back.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

from .spec import OPEN_CLIP_HUB, ModelSpec

WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".msgpack", ".h5", ".onnx")
# Files that say how the weights are wired: a changed architecture with the same weight files.
CONFIG_FILES = ("config.json", "open_clip_config.json", "clipforge_onnx.json")
_CHUNK = 8 << 20
_CACHE_ENTRIES = 256
_SETTLE_NS = 2_000_000_000


def _weight_files(folder: Path) -> list[Path]:
    files = [p for p in folder.iterdir() if p.suffix in WEIGHT_SUFFIXES and p.is_file()]
    configs = [folder / name for name in CONFIG_FILES if (folder / name).is_file()]
    return sorted(files + configs)


def _cached_hub_folder(repo: str, config: str) -> Path | None:
    try:
        from huggingface_hub import try_to_load_from_cache
    except ImportError:
        return None
    found = try_to_load_from_cache(repo, config)
    return Path(found).parent if isinstance(found, (str, os.PathLike)) else None


def _spec_files(spec: ModelSpec) -> list[Path] | None:
    """The files whose bytes make the model, or None where they cannot be found."""
    if spec.scheme == "builtin":
        from .builtin import builtin_dir, text_package_dir

        folder = builtin_dir(spec.target)
        return _weight_files(folder) + _weight_files(text_package_dir(folder))
    if spec.scheme == "open_clip":
        name, where = spec.open_clip_parts
        if name is not None:  # a named config: the config is the name, hashed with the file
            return [Path(where)]
        folder = _cached_hub_folder(where[len(OPEN_CLIP_HUB):], "open_clip_config.json") \
            if where.startswith(OPEN_CLIP_HUB) else Path(where)
        return _weight_files(folder) if folder else None
    folder = Path(spec.target) if spec.local_path else _cached_hub_folder(spec.target, "config.json")
    return _weight_files(folder) if folder else None


def model_fingerprint(spec: ModelSpec) -> str | None:
    """``sha256:<hex>`` over the weight files' names and contents; None where the files are
    not on this machine (a hub model not in the local cache)."""
    files = _spec_files(spec)
    if not files:
        return None
    name, _ = spec.open_clip_parts if spec.scheme == "open_clip" else (None, None)
    try:
        key = _stat_key(name, files)
    except OSError:
        key = None
    remembered = _remembered()
    if key is not None and key in remembered:
        return remembered[key]
    digest = hashlib.sha256()
    if name is not None:
        digest.update(f"open_clip config {name}".encode() + b"\0")
    for path in files:
        digest.update(path.name.encode() + b"\0")
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
    fingerprint = "sha256:" + digest.hexdigest()[:32]
    # Remembered only when no file changed while it was read, nor so recently that a write in
    # the same clock tick could leave its times as they were (git's "racily clean" case).
    try:
        settled = key is not None and _stat_key(name, files) == key and all(
            os.stat(path).st_ctime_ns < time.time_ns() - _SETTLE_NS for path in files)
    except OSError:
        settled = False
    if settled:
        _remember(remembered, key, fingerprint)
    return fingerprint


def _cache_file() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "clipforge" / "fingerprints.json"


def _stat_key(name: str | None, files: list[Path]) -> str:
    parts = [name or ""]
    for path in files:
        st = os.stat(path)
        parts.append(f"{os.path.realpath(path)}|{st.st_size}|{st.st_ino}|{st.st_mtime_ns}|{st.st_ctime_ns}")
    return hashlib.sha256("\0".join(parts).encode("utf-8", "surrogateescape")).hexdigest()


def _remembered() -> dict[str, str]:
    try:
        found = json.loads(_cache_file().read_text())
        return found if isinstance(found, dict) else {}
    except (OSError, ValueError):
        return {}


def _remember(remembered: dict[str, str], key: str, fingerprint: str) -> None:
    """Add to the cache file, keeping its newest entries; a cache that cannot be written is no cache."""
    entries = {**remembered, key: fingerprint}
    entries = dict(list(entries.items())[-_CACHE_ENTRIES:])
    path = _cache_file()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        temporary.write_text(json.dumps(entries))
        os.replace(temporary, path)
    except OSError:
        pass
