"""``clipforge export onnx SPEC OUT [--int8]``: both towers of a model as ONNX, for ``onnx:OUT``.

The export directory holds ``image.onnx`` and ``text.onnx`` (dynamic batch; the text model
also takes any number of tokens), their int8 versions with ``--int8``, the tokenizer
(``tokenizer.json``, which the ``tokenizers`` library reads without transformers or torch),
the model's text memory if it ships one, and ``clipforge_onnx.json``: the preprocessing, the
tokenisation settings, the logit scale and bias, where the weights came from, and each
variant's measured speed and agreement with the torch fp32 model.

int8 is ONNX Runtime's dynamic quantisation of the matrix products (weights int8 per channel,
activations quantised on the fly): it needs no calibration images and, on CPUs with VNNI,
runs the transformer layers' int8 kernels. ``--openvino`` adds OpenVINO's variants
(``openvino_export``): static int8, calibrated, and bf16. Every variant is measured through the
runner the encoder uses (``onnx_runtimes``).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import time
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError, ModelLoadError
from .convert import unused_dir, written_whole
from .encoding import unit_rows
from .fingerprint import model_fingerprint
from .hf import Encoder, load_hf_encoder, pooled_features, text_features, tokenize_texts
from .onnx_manifest import AGREEMENT_MIN_COSINE, FORMAT, MANIFEST, TOWERS, agrees
from .onnx_runtimes import open_runner
from .spec import parse_spec

log = logging.getLogger(__name__)

OPSET = 17
PROBE_TEXTS = [
    "a photo of a dog", "a red car parked on the street at night", "two cats sleeping on a sofa", "a bowl of fruit",
    "mountains under a blue sky", "a child riding a bicycle", "an old stone bridge over a river", "a plate of pasta",
    "a bird on a branch", "the city skyline at dusk", "a yellow flower in a green field", "people walking on a beach",
    "a close-up of a keyboard", "a snowy forest path", "a cup of coffee on a wooden table", "a sailing boat at sea",
]


class _ImageTower(torch.nn.Module):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, pixel_values):
        return pooled_features(self.model.get_image_features(pixel_values=pixel_values))


class _TextTower(torch.nn.Module):
    def __init__(self, model, names: Sequence[str]):
        super().__init__()
        self.model, self.names = model, list(names)

    def forward(self, *inputs):
        return text_features(self.model, **dict(zip(self.names, inputs)))


def _probe_pixels(encoder: Encoder, images: Sequence[str], count: int = 16, seed: int = 0) -> np.ndarray:
    """Preprocessed probe images: the given files, or photo-like gradients with noise."""
    from .pipeline import checked, decode_images

    if images:
        arrays = [decoded.pixels for decoded in checked(decode_images(images, encoder.preprocess, workers=0))]
    else:
        rng = np.random.default_rng(seed)
        h, w = encoder.preprocess.output_size
        arrays = []
        for _ in range(count):
            ramp = np.linspace(0, 1, w, dtype=np.float32)[None, :, None] * rng.integers(-120, 120, 3)
            base = rng.integers(0, 256, 3) + ramp + rng.normal(0, 25, (h, w, 3))
            arrays.append(np.clip(base, 0, 255).astype(np.uint8))
    return encoder.preprocess.normalize(np.stack(arrays))


def _export(module, args: tuple, path: Path, names: list[str], dynamic: dict) -> None:
    with warnings.catch_warnings():
        # The TorchScript exporter is deprecated in favour of torch.export, which needs onnxscript;
        # its trace warnings are about shapes the dynamic axes below keep free.
        warnings.simplefilter("ignore")
        torch.onnx.export(module, args, str(path), input_names=names, output_names=["features"],
                          dynamic_axes={**dynamic, "features": {0: "batch"}}, opset_version=OPSET, dynamo=False)


class _NoPreprocessAdvice(logging.Filter):
    # quantize_dynamic advises, on the root logger, running its shape-inference pre-processing
    # first; on a ViT-B/32 it changed neither the speed nor the agreement of the int8 model.
    def filter(self, record: logging.LogRecord) -> bool:
        return "pre-processing before quantization" not in record.getMessage()


def _quantize(fp32: Path, int8: Path) -> None:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quiet = _NoPreprocessAdvice()
    logging.getLogger().addFilter(quiet)
    try:
        # Matrix products only: they hold nearly all the compute, and ConvInteger (the patch
        # embedding, ConvNeXt's convolutions) is slower in ONNX Runtime than float convolution.
        # Signed per-channel weights: unsigned ones ran at 60% of the speed on a VNNI CPU.
        quantize_dynamic(str(fp32), str(int8), weight_type=QuantType.QInt8, per_channel=True,
                         op_types_to_quantize=["MatMul", "Gemm"])
    finally:
        logging.getLogger().removeFilter(quiet)


def _measure(spec, path: Path, variant: dict, feeds: dict[str, np.ndarray], reference: np.ndarray) -> dict:
    """``variant`` with its speed and its agreement with ``reference``, run as the encoder runs it."""
    run = open_runner(spec, path, "cpu", variant)
    run(feeds)  # warm-up
    runs, start = 0, time.perf_counter()
    while runs < 2 or time.perf_counter() - start < 1.0:
        features = run(feeds)
        runs += 1
    seconds = (time.perf_counter() - start) / runs
    cosine = (unit_rows(features) * unit_rows(reference)).sum(axis=1)
    return {**variant, "items_per_s": round(len(reference) / seconds, 2),
            "cosine_min": round(float(cosine.min()), 6), "cosine_mean": round(float(cosine.mean()), 6)}


def _keep_agreeing(measured: dict[str, dict], folder: Path) -> tuple[dict, dict]:
    """(variants, dropped): a variant whose vectors do not agree with fp32's within the
    tolerance is left out of the export, its files deleted, so that every variant an export
    holds gives vectors comparable with its source's (``models.comparable``)."""
    variants = {tower: {n: v for n, v in found.items() if n == "fp32" or agrees(v)} for tower, found in measured.items()}
    dropped = {tower: {n: v for n, v in found.items() if n not in variants[tower]} for tower, found in measured.items()}
    kept_files = {v["file"] for found in variants.values() for v in found.values()}
    for found in dropped.values():
        for v in found.values():
            if v["file"] not in kept_files:
                (folder / v["file"]).unlink(missing_ok=True)
                (folder / v["file"]).with_suffix(".bin").unlink(missing_ok=True)  # an OpenVINO model's weights
    return variants, {tower: found for tower, found in dropped.items() if found}


def _calibration(encoder: Encoder, images: Sequence[str], names: list[str]) -> dict[str, list[dict]]:
    """Single-item feeds per tower for static quantisation: other inputs than the probes."""
    from .openvino_export import CALIBRATION_TEXTS

    pixels = _probe_pixels(encoder, images, count=48, seed=1)
    texts = tokenize_texts(encoder.tokenizer, encoder.family, CALIBRATION_TEXTS, encoder.max_text_length)
    lengths = texts["attention_mask"].sum(dim=1) if "attention_mask" in texts else None
    text_feeds = []
    for i in range(len(CALIBRATION_TEXTS)):
        end = int(lengths[i]) if lengths is not None else None  # each caption at its own length
        text_feeds.append({name: texts[name][i : i + 1, :end].numpy() for name in names})
    return {"image": [{"pixel_values": pixels[i : i + 1]} for i in range(len(pixels))], "text": text_feeds}


def _tokenizer_settings(encoder: Encoder, out: Path) -> dict:
    backend = getattr(encoder.tokenizer, "backend_tokenizer", None)
    if backend is None:
        raise ModelLoadError(f"{encoder.spec}: its tokenizer has no tokenizers backend to export (tokenizer.json)")
    backend.save(str(out / "tokenizer.json"))
    return {
        "file": "tokenizer.json",
        "max_length": encoder.max_text_length,
        "pad_to_max_length": encoder.family == "siglip",
        "pad_id": int(encoder.tokenizer.pad_token_id or 0),
        "pad_token": str(encoder.tokenizer.pad_token or ""),
        "padding_side": encoder.tokenizer.padding_side,  # Gemma's (SigLIP2's) pads on the left
        "truncation_side": encoder.tokenizer.truncation_side,
    }


def export_onnx(spec: str, out: str | Path, int8: bool = False, probe_images: Sequence[str] = (),
                openvino: bool = False, calibration_images: Sequence[str] = ()) -> dict:
    """Export ``spec``'s towers to the new directory ``out``; returns the manifest written.

    ``openvino`` adds the OpenVINO variants (``openvino_export``), quantised on
    ``calibration_images`` (default: synthetic photo-like images other than the probes)."""
    parsed = parse_spec(spec)
    if parsed.scheme == "onnx":
        raise InputError(f"{spec} is already an ONNX export")
    if openvino:
        from .openvino_export import require_openvino, variants as openvino_variants

        require_openvino()
    out = unused_dir(out)
    encoder = load_hf_encoder(parsed, device="cpu", precision="fp32")  # a copy of its own: it is changed below
    model = encoder.model
    if hasattr(model, "set_attn_implementation"):
        model.set_attn_implementation("eager")  # traces to plain ONNX ops on every runtime
    pixels = _probe_pixels(encoder, probe_images)
    text_inputs = tokenize_texts(encoder.tokenizer, encoder.family, PROBE_TEXTS, encoder.max_text_length)
    names = list(text_inputs)
    with torch.inference_mode():
        image_reference = _ImageTower(model)(torch.from_numpy(pixels)).float().numpy()
        text_reference = _TextTower(model, names)(*text_inputs.values()).float().numpy()
    feeds = {"image": {"pixel_values": pixels}, "text": {k: v.numpy() for k, v in text_inputs.items()}}
    references = {"image": image_reference, "text": text_reference}
    with written_whole(out) as scratch:
        _export(_ImageTower(model), (torch.from_numpy(pixels[:2]),), scratch / "image.onnx", ["pixel_values"],
                {"pixel_values": {0: "batch"}})
        _export(_TextTower(model, names), tuple(v[:2] for v in text_inputs.values()), scratch / "text.onnx", names,
                {name: {0: "batch", 1: "tokens"} for name in names})
        written = {tower: {"fp32": {"file": f"{tower}.onnx"}} for tower in TOWERS}
        calibration = _calibration(encoder, calibration_images, names) if openvino else {}
        for tower in TOWERS:
            if int8:
                _quantize(scratch / f"{tower}.onnx", scratch / f"{tower}_int8.onnx")
                written[tower]["int8"] = {"file": f"{tower}_int8.onnx"}
            if openvino:
                written[tower].update(openvino_variants(tower, scratch, calibration[tower]))
        measured = {tower: {name: _measure(parsed, scratch / v["file"], v, feeds[tower], references[tower])
                            for name, v in found.items()} for tower, found in written.items()}
        variants, dropped = _keep_agreeing(measured, scratch)
        if encoder.text_memory is not None:
            from .text_memory import MEMORY_FILE

            encoder.text_memory.save(scratch / MEMORY_FILE)
        manifest = {
            "format": FORMAT,
            "source": str(parsed),
            "source_fingerprint": model_fingerprint(parsed),
            "family": encoder.family,
            "dim": encoder.dim,
            "logit_scale": encoder.logit_scale,
            "logit_bias": encoder.logit_bias,
            "text_inputs": names,
            "tokenizer": _tokenizer_settings(encoder, scratch),
            "preprocess": dataclasses.asdict(encoder.preprocess),
            "probes": {"images": len(pixels), "texts": len(PROBE_TEXTS), "from_files": bool(probe_images)},
            "calibration": {"images": len(calibration["image"]), "texts": len(calibration["text"]),
                            "from_files": bool(calibration_images)} if openvino else None,
            "variants": variants,
            "dropped": dropped,
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    for tower, found in variants.items():
        for name, v in found.items():
            log.info("%s %s: %.1f/s, cosine to torch fp32 min %.5f", tower, name, v["items_per_s"], v["cosine_min"])
    for tower, found in dropped.items():
        for name, v in found.items():
            log.warning("%s %s left out: its lowest cosine to torch fp32, %.5f, is below %s", tower, name,
                        v["cosine_min"], AGREEMENT_MIN_COSINE)
    return manifest
