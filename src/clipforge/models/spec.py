"""Model spec strings.

- ``hf:<hub id>`` or ``hf:<local dir>``: a Hugging Face CLIPModel, SiglipModel or
  VisionTextDualEncoderModel;
- ``builtin:<name>``: a model shipped inside the package;
- ``open_clip:<config name>/<checkpoint file>``: an open_clip checkpoint with one of
  open_clip's named configs (``open_clip:ViT-B-32/laion2b_s34b_b79k.pt``);
  ``open_clip:<local dir>``: a folder in open_clip's hub layout (``open_clip_config.json``
  beside the weights); ``open_clip:hf-hub:<org/name>``: the same, downloaded from the hub;
- ``onnx:<local dir>``: an export made by ``clipforge export onnx``, run by ONNX Runtime.

Local paths are resolved to absolute ones, so a collection built from ``hf:runs/x/final``
can be reopened from anywhere.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from ..errors import ModelLoadError

SCHEMES = ("hf", "builtin", "open_clip", "onnx")
OPEN_CLIP_HUB = "hf-hub:"
_EXPECTED = ("expected 'hf:<hub id>', 'hf:<local dir>', 'builtin:<name>', "
             "'open_clip:<config>/<checkpoint>', 'open_clip:<dir>' or 'onnx:<dir>'")


@dataclass(frozen=True)
class ModelSpec:
    scheme: str
    # hf: a hub id or an absolute local directory; builtin: a name; onnx: an absolute directory;
    # open_clip: an absolute directory, "hf-hub:<id>", or "<config name>/<absolute checkpoint path>"
    target: str

    @property
    def is_local(self) -> bool:
        """A Hugging Face model in a local directory."""
        return self.scheme == "hf" and os.path.isabs(self.target)

    @property
    def local_path(self) -> Path | None:
        """The local directory or file that holds the weights; None for a hub id or a builtin."""
        if self.scheme in ("hf", "onnx") and os.path.isabs(self.target):
            return Path(self.target)
        if self.scheme == "open_clip" and not self.target.startswith(OPEN_CLIP_HUB):
            return Path(self.target) if os.path.isabs(self.target) else Path(self.open_clip_parts[1])
        return None

    @property
    def open_clip_parts(self) -> tuple[str | None, str]:
        """(config name, checkpoint path) of a named-config spec; (None, dir or hub id) otherwise."""
        if os.path.isabs(self.target) or self.target.startswith(OPEN_CLIP_HUB):
            return None, self.target
        name, _, checkpoint = self.target.partition("/")
        return name, checkpoint

    def __str__(self) -> str:
        return f"{self.scheme}:{self.target}"


def _looks_like_path(target: str) -> bool:
    # A hub id is "name" or "org/name"; anything else with a slash or a leading dot/tilde is a path.
    return target.startswith(("/", ".", "~")) or target.count("/") > 1 or os.sep == "\\" and "\\" in target


def parse_spec(spec: str) -> ModelSpec:
    """Parse a spec string (see the module docstring), resolving local paths."""
    if not isinstance(spec, str) or ":" not in spec:
        raise ModelLoadError(f"bad model spec {spec!r}: {_EXPECTED}")
    scheme, target = spec.split(":", 1)
    if scheme not in SCHEMES or not target:
        raise ModelLoadError(f"bad model spec {spec!r}: {_EXPECTED}")
    if scheme == "builtin":
        return ModelSpec(scheme, target)
    if scheme == "open_clip":
        return _parse_open_clip(spec, target)
    expanded = Path(target).expanduser()
    if expanded.is_dir():
        return ModelSpec(scheme, str(expanded.resolve()))
    if scheme == "onnx":
        raise ModelLoadError(f"{spec}: export directory {target} does not exist (make one with `clipforge export onnx`)")
    if _looks_like_path(target):
        raise ModelLoadError(f"model directory {target} does not exist")
    return ModelSpec("hf", target)


def _parse_open_clip(spec: str, target: str) -> ModelSpec:
    if target.startswith(OPEN_CLIP_HUB):
        if target.count("/") != 1 or len(target) <= len(OPEN_CLIP_HUB) + 2:
            raise ModelLoadError(f"bad model spec {spec!r}: expected 'open_clip:hf-hub:<org>/<name>'")
        return ModelSpec("open_clip", target)
    expanded = Path(target).expanduser()
    if expanded.is_dir():
        return ModelSpec("open_clip", str(expanded.resolve()))
    name, slash, checkpoint = target.partition("/")
    if not slash or not name or not checkpoint or name.startswith((".", "~")):
        raise ModelLoadError(
            f"bad model spec {spec!r}: expected 'open_clip:<config name>/<checkpoint file>' "
            f"(such as open_clip:ViT-B-32/model.pt), 'open_clip:<dir>' or 'open_clip:hf-hub:<org>/<name>'"
        )
    path = Path(checkpoint).expanduser()
    if not path.is_file():
        raise ModelLoadError(
            f"{spec}: checkpoint file {checkpoint} does not exist (open_clip's pretrained tags are not "
            f"downloaded by name; for a hub model use open_clip:hf-hub:<org>/<name>)"
        )
    return ModelSpec("open_clip", f"{name}/{path.resolve()}")
