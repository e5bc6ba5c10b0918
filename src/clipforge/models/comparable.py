"""Whether the vectors of two model specs can be searched against each other.

Vectors are comparable when they come from the same weights. ``hf:X`` and an ONNX export of
``hf:X`` hold the same weights in two runtimes: the export records the fingerprint of the
weights it came from, and each variant it holds (fp32, int8) agrees with them within the
tolerance ``onnx_manifest.AGREEMENT_MIN_COSINE``, measured when it was made. So a collection
built with ``hf:X`` answers queries encoded by ``onnx:OUT`` (and the other way round) while
both still hold the weights the export was made from; retrained weights, or another model,
are refused.
"""

from __future__ import annotations

import json

from .fingerprint import model_fingerprint
from .onnx_manifest import MANIFEST, agrees
from .spec import ModelSpec, parse_spec


def _export_source(spec: ModelSpec) -> str | None:
    """The fingerprint of the weights an ``onnx:`` export came from, if all its variants agree with them."""
    if spec.scheme != "onnx" or spec.local_path is None:
        return None
    try:
        manifest = json.loads((spec.local_path / MANIFEST).read_text())
        variants = [v for tower in manifest["variants"].values() for v in tower.values()]
        return manifest["source_fingerprint"] if all(agrees(v) for v in variants) else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def weights_identities(spec: str | ModelSpec, fingerprint: str | None = None) -> set[str]:
    """The fingerprints of the weights whose vectors ``spec`` produces: its own files' and, for
    an export that agrees with its source, the source's. ``fingerprint`` stands in for the
    spec's own (a collection's record of the weights it was built with)."""
    parsed = spec if isinstance(spec, ModelSpec) else parse_spec(spec)
    current = model_fingerprint(parsed)
    if fingerprint and current != fingerprint:
        return {fingerprint}  # the files changed since: what they came from says nothing of the vectors
    return {f for f in (current, _export_source(parsed)) if f}


def comparable(built_with: str, built_fingerprint: str | None, candidate: str) -> bool:
    """Whether ``candidate``'s vectors can query a collection built with ``built_with``
    (whose weights had ``built_fingerprint``, where it recorded one)."""
    if str(parse_spec(built_with)) == str(parse_spec(candidate)):
        return True
    return bool(weights_identities(built_with, built_fingerprint) & weights_identities(candidate))
