"""The manifest of an ONNX export (``clipforge_onnx.json``), and which of its variants runs.

An export holds, per tower (``image``, ``text``), an fp32 model and, with ``--int8``, an int8
one (ONNX Runtime's dynamic quantisation); with ``--openvino``, also ``openvino-int8`` (static
int8, calibrated) and ``openvino-bf16`` (``onnx_runtimes``). Its export measured each variant
against the torch fp32 model it came from: speed (items/s, on the exporting machine) and
cosine agreement of the vectors on probe inputs.

``precision="auto"`` runs, per tower, the fastest variant whose lowest cosine to fp32 is at
least ``AGREEMENT_MIN_COSINE`` and whose runtime is installed; ``fp32`` runs the fp32 model on
ONNX Runtime, and ``int8`` or ``bf16`` the fastest variant of that precision (one that agrees,
if any does). Vectors of a variant
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
    """The variant of ``tower`` that ``precision`` (auto, fp32, int8 or bf16) runs."""
    from .onnx_runtimes import available, runtime_of

    variants = manifest["variants"][tower]
    if precision == "fp16":
        raise InputError(f"{spec}: an ONNX export runs in fp32, int8 or bf16, not fp16")
    if precision == "fp32":
        return "fp32"
    if precision == "auto":
        candidates = [name for name, v in variants.items() if name == "fp32" or agrees(v)]
    else:
        candidates = [name for name in variants if name.split("-")[-1] == precision]
        if not candidates:
            left_out = [v for name, v in manifest.get("dropped", {}).get(tower, {}).items()
                        if name.split("-")[-1] == precision]
            if left_out:
                raise InputError(f"{spec}: the export left out its {precision} {tower} model: its lowest cosine to "
                                 f"fp32, {left_out[0]['cosine_min']}, is below {AGREEMENT_MIN_COSINE}")
            how = "--int8" if precision == "int8" else "--openvino"
            raise InputError(f"{spec}: this export has no {precision} {tower} model (export it again with {how})")
    installed = [name for name in candidates if name == "fp32" or available(runtime_of(variants[name]))]
    if not installed:
        raise InputError(f"{spec}: the {precision} {tower} models of this export run on OpenVINO, which is not "
                         f"installed: pip install 'clipforge[openvino]'")
    # Asked for by precision, a variant that agrees still goes before a faster one that does not.
    return max(installed, key=lambda name: (agrees(variants[name]), float(variants[name].get("items_per_s", 0.0))))
