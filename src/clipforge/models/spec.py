"""Model spec strings: ``hf:<hub id>``, ``hf:<local dir>`` and ``builtin:<name>``."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

SCHEMES = ("hf", "builtin")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str
    target: str  # a hub id, an absolute local directory, or a builtin name

    @property
    def is_local(self) -> bool:
        return self.scheme == "hf" and os.path.isabs(self.target)

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def _looks_like_path(target: str) -> bool:
    # A hub id is "name" or "org/name"; anything else with a slash or a leading dot/tilde is a path.
    return target.startswith(("/", ".", "~")) or target.count("/") > 1 or os.sep == "\\" and "\\" in target


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string. A local directory is resolved to an absolute path, so a
    collection built from ``hf:runs/x/final`` can be reopened from anywhere."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelLoadError(
            f"bad model spec {spec!r}: expected 'hf:<hub id>', 'hf:<local dir>' or 'builtin:<name>'"
        )
    scheme, target = spec.split(":", 1)
    if scheme not in SCHEMES or not target:
        raise ModelLoadError(
            f"bad model spec {spec!r}: expected 'hf:<hub id>', 'hf:<local dir>' or 'builtin:<name>'"
        )
    if scheme == "builtin":
        return ModelSpec(scheme, target)
    expanded = Path(target).expanduser()
    if expanded.is_dir():
        return ModelSpec("hf", str(expanded.resolve()))
    if _looks_like_path(target):
        raise ModelLoadError(f"model directory {target} does not exist")
    return ModelSpec("hf", target)
