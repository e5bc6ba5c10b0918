"""The Hugging Face backend: CLIPModel, SiglipModel and VisionTextDualEncoderModel."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlparse

import numpy as np
import torch

from ..errors import ModelLoadError
from .device import choose_device, choose_dtype, precision_name
from .encoding import ImageEncoding, text_list
from .preprocess import ImagePreprocess
from .spec import ModelSpec

log = logging.getLogger(__name__)

FAMILIES = {"clip": "clip", "siglip": "siglip", "vision-text-dual-encoder": "dual"}
_TOKENIZER_FILES = (
    "tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt",
    "spiece.model", "tokenizer.model", "sentencepiece.bpe.model",
)


def pooled_features(output) -> torch.Tensor:
    # transformers 5.x returns an output object from get_*_features; 4.x returned a tensor.
    return output if isinstance(output, torch.Tensor) else output.pooler_output


# A config attribute, saved in config.json, naming how text features are pooled. Sentence
# encoders such as all-MiniLM-L6-v2 were trained on the mean of their token states; BERT's
# pooler (CLS + dense + tanh), which VisionTextDualEncoderModel uses by default, was never
# trained for sentence embeddings in them.
TEXT_POOLING_ATTR = "clipforge_text_pooling"
TEXT_POOLINGS = ("pooler", "mean")


def text_pooling(model) -> str:
    pooling = getattr(model.config, TEXT_POOLING_ATTR, None) or "pooler"
    if pooling not in TEXT_POOLINGS:
        raise ModelLoadError(f"unknown {TEXT_POOLING_ATTR} {pooling!r} in the model config; use one of {TEXT_POOLINGS}")
    return pooling


def text_features(model, **inputs: torch.Tensor) -> torch.Tensor:
    """Projected text features, pooled as the model's config says (unnormalised)."""
    if text_pooling(model) == "pooler":
        return pooled_features(model.get_text_features(**inputs))
    return model.text_projection(text_tower_features(model, **inputs))


def text_tower_features(model, **inputs: torch.Tensor) -> torch.Tensor:
    """The text tower's pooled features before the projection, pooled as the model's config says."""
    output = model.text_model(**inputs)
    if text_pooling(model) == "pooler":
        return output.pooler_output
    states = output.last_hidden_state
    mask = inputs["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp_min(1.0)


def _hub_reachable(timeout: float = 3.0) -> bool:
    # huggingface_hub retries a dead network for ~25 s with a warning each time; one quick
    # connection attempt gives the same answer at once.
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT", "https://huggingface.co"))
    port = endpoint.port or (443 if endpoint.scheme == "https" else 80)
    try:
        socket.create_connection((endpoint.hostname, port), timeout=timeout).close()
        return True
    except OSError:
        return False


def _load_config(spec: ModelSpec):
    from transformers import AutoConfig

    where = spec.target
    if spec.is_local and not os.path.isfile(os.path.join(where, "config.json")):
        # transformers reports a local directory without config.json as a ValueError about
        # model_type, which escaped as a traceback.
        raise ModelLoadError(f"{where} is not a model directory (no config.json)")
    try:
        if spec.is_local:
            try:
                return AutoConfig.from_pretrained(where), False
            except ValueError as e:  # a config.json without a known model_type
                raise ModelLoadError(f"cannot read {where}/config.json: {str(e).strip()}") from None
        try:  # a hub model already in the local cache loads without the network
            return AutoConfig.from_pretrained(where, local_files_only=True), True
        except OSError:
            if not _hub_reachable():
                raise
            return AutoConfig.from_pretrained(where), False
    except OSError as e:
        if spec.is_local:
            raise ModelLoadError(f"{where} is not a model directory (no config.json): {e}") from None
        raise ModelLoadError(
            f"cannot load hub model '{where}' (offline or unknown id); download it once with "
            f"network access, or point at a local copy: --model hf:/path/to/model-dir"
        ) from None


def load_parts(spec: ModelSpec):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    config, cached = _load_config(spec)
    if config.model_type == "siglip2":
        # Siglip2Model is the NaFlex variant: each image keeps its aspect ratio as a variable
        # number of patches, which a fixed-size image pipeline cannot feed. The fixed-resolution
        # SigLIP2 checkpoints are SiglipModels and load as such.
        raise ModelLoadError(
            f"{spec}: SigLIP2 NaFlex checkpoints (variable resolution) are not supported; use a fixed-resolution "
            f"SigLIP2 checkpoint such as google/siglip2-base-patch16-224"
        )
    family = FAMILIES.get(config.model_type)
    if family is None:
        raise ModelLoadError(
            f"{spec}: model type '{config.model_type}' is not a dual encoder; "
            f"supported: CLIPModel, SiglipModel, VisionTextDualEncoderModel"
        )
    where, local = spec.target, {"local_files_only": True} if cached else {}
    if spec.is_local and not any(os.path.isfile(os.path.join(where, f)) for f in _TOKENIZER_FILES):
        # Without any of these, AutoTokenizer builds an empty tokenizer that maps every word
        # to <unk>: the text vectors would be meaningless, silently.
        raise ModelLoadError(f"{where} has no tokenizer files ({', '.join(_TOKENIZER_FILES[:3])}, ...)")
    try:
        model = AutoModel.from_pretrained(where, config=config, **local)
        tokenizer = AutoTokenizer.from_pretrained(where, **local)
        image_processor = AutoImageProcessor.from_pretrained(where, **local)
    except (OSError, ValueError) as e:
        first_line = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"cannot load {spec}: {first_line}") from None
    return family, model, tokenizer, image_processor


def max_text_length_of(model, tokenizer) -> int:
    text_config = getattr(model.config, "text_config", None)
    positions = getattr(text_config, "max_position_embeddings", None) or 512
    limit = tokenizer.model_max_length if tokenizer.model_max_length < 100_000 else positions
    return int(min(limit, positions))


def tokenize_texts(tokenizer, family: str, texts: list[str], max_length: int) -> dict[str, torch.Tensor]:
    """Tokenised texts, truncated and padded the way the model family expects.

    Training and inference both use this, so a model sees the same inputs in both.
    """
    # SigLIP was trained with every text padded to the full length and attends to the
    # padding by design; its pooled output differs otherwise.
    padding = "max_length" if family == "siglip" else True
    batch = tokenizer(texts, padding=padding, truncation=True, max_length=max_length, return_tensors="pt")
    keep = ("input_ids",) if family == "siglip" else ("input_ids", "attention_mask", "token_type_ids")
    return {k: v for k, v in batch.items() if k in keep}


@dataclass
class Encoder(ImageEncoding):
    """A loaded dual encoder. ``encode_*`` return L2-normalised float32 arrays."""

    spec: ModelSpec
    family: str
    model: torch.nn.Module
    tokenizer: object
    preprocess: ImagePreprocess
    device: torch.device
    dtype: torch.dtype
    max_text_length: int
    dim: int = 0
    text_memory: object = None  # the models.text_memory.TextMemory the model ships, if any

    @property
    def precision(self) -> str:
        return precision_name(self.dtype)

    @property
    def logit_scale(self) -> float:
        return float(self.model.logit_scale.detach().float().exp())

    @property
    def logit_bias(self) -> float | None:
        bias = getattr(self.model, "logit_bias", None)
        return None if bias is None else float(bias.detach().float())

    def _tokenize(self, texts: list[str]) -> dict[str, torch.Tensor]:
        inputs = tokenize_texts(self.tokenizer, self.family, texts, self.max_text_length)
        return {k: v.to(self.device) for k, v in inputs.items()}

    @torch.inference_mode()
    def encode_texts(self, texts: Sequence[str] | str, batch_size: int = 256) -> np.ndarray:
        texts = text_list(texts)
        out = []
        for start in range(0, len(texts), batch_size):
            inputs = self._tokenize(texts[start : start + batch_size])
            out.append(_normalized(text_features(self.model, **inputs)))
        return _stack(out, self.dim)

    @torch.inference_mode()
    def encode_pixels(self, pixels: np.ndarray | torch.Tensor, batch_size: int = 64) -> np.ndarray:
        """Encode already-preprocessed float32 NCHW pixels."""
        tensor = torch.as_tensor(pixels)
        out = []
        for start in range(0, tensor.shape[0], batch_size):
            chunk = tensor[start : start + batch_size].to(self.device, self.dtype)
            out.append(_normalized(pooled_features(self.model.get_image_features(pixel_values=chunk))))
        vectors = _stack(out, self.dim)
        return vectors if self.text_memory is None else self.text_memory.blend(vectors)


def _shipped_text_memory(spec: ModelSpec, dim: int):
    from .text_memory import find_model_memory

    if spec.scheme == "builtin":
        from .builtin import builtin_dir

        folder = builtin_dir(spec.target)
    else:
        folder = spec.target if spec.is_local else None
    memory = find_model_memory(folder, dim)
    if memory is not None:
        memory.source = str(spec)  # reports name the model, not where it is installed
    return memory


def _normalized(features: torch.Tensor) -> np.ndarray:
    features = features.float()
    features = features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return features.cpu().numpy()


def _stack(chunks: list[np.ndarray], dim: int) -> np.ndarray:
    if not chunks:
        return np.zeros((0, dim), np.float32)
    return np.ascontiguousarray(np.concatenate(chunks).astype(np.float32, copy=False))


def _preprocess_of(spec: ModelSpec, image_processor) -> ImagePreprocess:
    try:
        return ImagePreprocess.from_hf(image_processor)
    except ValueError as e:
        raise ModelLoadError(f"{spec}: {e}") from None


def load_torch_parts(spec: ModelSpec):
    """(family, model, tokenizer, image processor) of any spec that torch runs."""
    if spec.scheme == "builtin":
        from .builtin import load_builtin_parts

        return load_builtin_parts(spec.target)
    if spec.scheme == "open_clip":
        from .openclip import load_open_clip_parts

        return load_open_clip_parts(spec)
    if spec.scheme != "hf":
        raise ModelLoadError(f"{spec}: not a torch model")
    return load_parts(spec)


def load_hf_encoder(spec: ModelSpec, device: str = "auto", precision: str = "auto") -> Encoder:
    torch_device = choose_device(device)
    dtype = choose_dtype(torch_device, precision)
    family, model, tokenizer, image_processor = load_torch_parts(spec)
    model = model.to(torch_device, dtype).eval()
    encoder = Encoder(
        spec=spec,
        family=family,
        model=model,
        tokenizer=tokenizer,
        preprocess=_preprocess_of(spec, image_processor),
        device=torch_device,
        dtype=dtype,
        max_text_length=max_text_length_of(model, tokenizer),
    )
    encoder.dim = int(encoder.encode_texts(["a"]).shape[1])
    encoder.text_memory = _shipped_text_memory(spec, encoder.dim)
    log.info("loaded %s (%s, dim %d) on %s in %s", spec, family, encoder.dim, torch_device, encoder.precision)
    return encoder

