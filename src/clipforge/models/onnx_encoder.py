"""``onnx:<dir>``: an export of ``clipforge export onnx``, run by ONNX Runtime or OpenVINO, without torch.

It takes the same inputs as the model it was exported from: the same ``ImagePreprocess``
(read from the manifest), the same tokenizer (its ``tokenizer.json``, through the
``tokenizers`` library, truncated and padded as ``hf.tokenize_texts`` does), and it
normalises the same way. Nothing here imports torch or transformers; a test checks it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import InputError, ModelLoadError
from .encoding import ImageEncoding, text_list, unit_rows
from .onnx_manifest import TOWERS, choose_variant, read_manifest
from .onnx_runtimes import open_runner
from .preprocess import ImagePreprocess
from .spec import ModelSpec

log = logging.getLogger(__name__)


def _tokenizer(spec: ModelSpec, folder: Path, settings: dict):
    from tokenizers import Tokenizer

    try:
        tokenizer = Tokenizer.from_file(str(folder / settings["file"]))
    except Exception as e:
        raise ModelLoadError(f"{spec}: cannot read {settings['file']}: {str(e).strip()[:200]}") from None
    tokenizer.enable_truncation(max_length=int(settings["max_length"]), direction=settings["truncation_side"])
    length = int(settings["max_length"]) if settings["pad_to_max_length"] else None
    tokenizer.enable_padding(pad_id=int(settings["pad_id"]), pad_token=settings["pad_token"], length=length,
                             direction=settings["padding_side"])
    return tokenizer


def _preprocess(settings: dict) -> ImagePreprocess:
    tuples = {k: tuple(v) for k, v in settings.items() if isinstance(v, list)}
    return ImagePreprocess(**{**settings, **tuples})


class OnnxEncoder(ImageEncoding):
    """The encoder API of ``hf.Encoder`` over ONNX Runtime sessions."""

    model = None  # no torch module: training and fine-tuning need the ``hf:`` model

    def __init__(self, spec: ModelSpec, device: str = "auto", precision: str = "auto"):
        folder = Path(spec.target)
        manifest = read_manifest(spec, folder)
        self.spec, self.manifest = spec, manifest
        self.family = manifest["family"]
        self.dim = int(manifest["dim"])
        self.preprocess = _preprocess(manifest["preprocess"])
        self.max_text_length = int(manifest["tokenizer"]["max_length"])
        self.logit_scale = float(manifest["logit_scale"])
        self.logit_bias = None if manifest.get("logit_bias") is None else float(manifest["logit_bias"])
        self.text_inputs = list(manifest["text_inputs"])
        self.variants = {tower: choose_variant(spec, manifest, tower, precision) for tower in TOWERS}
        # Each tower's runner is made when first used: a text query never pays for loading
        # the image tower (most of a ViT-B/32 command's start-up). Files are checked now.
        self._chosen = {tower: manifest["variants"][tower][name] for tower, name in self.variants.items()}
        self._files = {tower: folder / variant["file"] for tower, variant in self._chosen.items()}
        for file in self._files.values():
            if not file.is_file():
                raise ModelLoadError(f"{spec}: {file.name} is missing from the export")
        if device not in ("auto", "cpu", "cuda"):
            raise InputError(f"{spec}: ONNX exports run on cpu or cuda, not {device}")
        self._device, self.device = device, "cuda" if device == "cuda" else "cpu"
        self._runners: dict = {}
        self._runners_lock = threading.Lock()
        self.tokenizer = _tokenizer(spec, folder, manifest["tokenizer"])
        self.text_memory = _shipped_text_memory(spec, folder, self.dim)

    def _runner(self, tower: str):
        with self._runners_lock:
            if tower not in self._runners:
                self._runners[tower] = open_runner(self.spec, self._files[tower], self._device, self._chosen[tower])
            return self._runners[tower]

    def _run(self, tower: str, feeds: dict[str, np.ndarray]) -> np.ndarray:
        return self._runner(tower)(feeds)

    def warm_up(self) -> None:
        """Load the image tower in the background (the first ``encode_pixels`` waits for it):
        indexing calls this once its decode workers have started, so that loading overlaps
        decoding the first batch."""
        def load() -> None:
            try:
                self._runner("image")
            except Exception:  # noqa: BLE001 - the first encode_pixels raises it again, in its caller
                pass

        threading.Thread(target=load, name="onnx-warm-up", daemon=True).start()

    @property
    def precision(self) -> str:
        """The image tower's variant (the one indexing runs); ``variants`` has both towers'."""
        return self.variants["image"]

    def _feeds(self, texts: list[str]) -> dict[str, np.ndarray]:
        encodings = self.tokenizer.encode_batch(texts)
        arrays = {
            "input_ids": [e.ids for e in encodings],
            "attention_mask": [e.attention_mask for e in encodings],
            "token_type_ids": [e.type_ids for e in encodings],
        }
        return {name: np.asarray(arrays[name], dtype=np.int64) for name in self.text_inputs}

    def encode_texts(self, texts: Sequence[str] | str, batch_size: int = 256) -> np.ndarray:
        texts = text_list(texts)
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(texts), batch_size):
            features = self._run("text", self._feeds(texts[start : start + batch_size]))
            out.append(unit_rows(features))
        return np.ascontiguousarray(np.concatenate(out))

    def encode_pixels(self, pixels: np.ndarray, batch_size: int = 64) -> np.ndarray:
        """Encode already-preprocessed float32 NCHW pixels."""
        pixels = np.asarray(pixels, dtype=np.float32)
        out = [np.zeros((0, self.dim), np.float32)]
        for start in range(0, len(pixels), batch_size):
            chunk = np.ascontiguousarray(pixels[start : start + batch_size])
            out.append(unit_rows(self._run("image", {"pixel_values": chunk})))
        vectors = np.ascontiguousarray(np.concatenate(out))
        return vectors if self.text_memory is None else self.text_memory.blend(vectors)


def _shipped_text_memory(spec: ModelSpec, folder: Path, dim: int):
    from .text_memory import find_model_memory

    memory = find_model_memory(folder, dim)
    if memory is not None:
        memory.source = str(spec)
    return memory


def load_onnx_encoder(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> OnnxEncoder:
    encoder = OnnxEncoder(spec, device=device, precision=precision)
    log.info("loaded %s (%s, dim %d) as an ONNX export: image %s, text %s", spec, encoder.family, encoder.dim,
             encoder.variants["image"], encoder.variants["text"])
    return encoder
