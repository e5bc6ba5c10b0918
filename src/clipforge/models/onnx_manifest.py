"""The manifest of an ONNX export (``clipforge_onnx.json``), and which of its variants runs.

An export holds, per tower (``image``, ``text``), an fp32 model and, with ``--int8``, an int8
one. Its export measured each variant against the torch fp32 model it came from: speed
(items/s, on the exporting machine) and cosine agreement of the vectors on probe inputs.

``precision="auto"`` runs, per tower, the fastest variant whose lowest cosine to fp32 is at
least ``AGREEMENT_MIN_COSINE``; ``fp32`` and ``int8`` ask for one by name. Vectors of a variant
that agrees are comparable with those of the weights it was exported from (a collection built
with one answers queries from the other; ``models.comparable``).
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import InputError, ModelLoadError

MANIFEST = "clipforge_onnx.json"
FORMAT = 1
TOWERS = ("image", "text")
VARIANTS = ("fp32", "int8")
# The lowest cosine between a variant's vector and torch fp32's, on the export's probes, for the
# variant to be picked by `auto` and to count as the same model. Dynamic int8 measured >= 0.999
# on a random ViT-B/32-shaped model (benchmarks/embed_throughput.py) and on the tiny test models;
# 0.99 keeps the top results of a search the same (tests/models/test_onnx.py).
AGREEMENT_MIN_COSINE = 0.99


def read_manifest(spec, folder: Path) -> dict:
    path = folder / MANIFEST
    if not path.is_file():
        raise ModelLoadError(f"{spec}: {folder} is not an ONNX export of clipforge (no {MANIFEST})")
    try:
        manifest = json.loads(path.read_text())
        if manifest.get("format") != FORMAT:
            raise ValueError(f"format {manifest.get('format')!r}, this clipforge reads {FORMAT}")
        for tower in TOWERS:
            if "fp32" not in manifest["variants"][tower]:
                raise ValueError(f"no fp32 {tower} model")
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ModelLoadError(f"{spec}: cannot read {MANIFEST}: {e}") from None
    return manifest


def agrees(variant: dict) -> bool:
    return float(variant.get("cosine_min", 0.0)) >= AGREEMENT_MIN_COSINE


def choose_variant(spec, manifest: dict, tower: str, precision: str) -> str:
    """The variant of ``tower`` that ``precision`` (auto, fp32 or int8) runs."""
    variants = manifest["variants"][tower]
    if precision in ("bf16", "fp16"):
        raise InputError(f"{spec}: an ONNX export runs in fp32 or int8, not {precision}")
    if precision != "auto":
        if precision not in variants:
            raise InputError(f"{spec}: this export has no {precision} {tower} model (export it again with --int8)")
        return precision
    usable = [name for name, v in variants.items() if name == "fp32" or agrees(v)]
    return max(usable, key=lambda name: float(variants[name].get("items_per_s", 0.0)))
