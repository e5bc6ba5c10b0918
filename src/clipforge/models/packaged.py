"""Model directories that pip packages carry (``package:<distribution>``), or plain directories.

A text tower such as all-MiniLM-L6-v2 can ship as a pip package, so that it installs (and
loads offline) like any other dependency. Training names such towers, and ``builtin:`` models
take their text tower from one.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path

from ..errors import NotFoundError

WEIGHT_FILES = ("model.safetensors", "pytorch_model.bin", "model.safetensors.index.json")


def resolve_tower(where: str) -> Path:
    """``package:<distribution>`` (a pip package that carries a model) or a directory."""
    if where.startswith("package:"):
        return package_model_dir(where[len("package:") :])
    path = Path(where.removeprefix("hf:")).expanduser()
    if not (path / "config.json").is_file():
        raise NotFoundError(f"tower {where}: no model directory (config.json) there")
    return path


def package_model_dir(name: str) -> Path:
    """The model directory inside installed distribution ``name`` (the outermost, if several)."""
    try:
        dist = importlib.metadata.distribution(name)
    except importlib.metadata.PackageNotFoundError:
        raise NotFoundError(f"tower package:{name}: package {name} is not installed") from None
    files = [Path(dist.locate_file(f)) for f in dist.files or [] if f.name == "config.json"]
    dirs = [f.parent for f in files if any((f.parent / w).is_file() for w in WEIGHT_FILES)]
    if not dirs:
        raise NotFoundError(f"tower package:{name}: the package holds no model directory")
    return min(dirs, key=lambda d: len(d.parts))
