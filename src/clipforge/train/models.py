"""The models training starts from: built from a preset, fine-tuned from a checkpoint, or
assembled from pretrained towers, with towers optionally locked (LiT)."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import torch
from torch import nn

from ..errors import InputError, ModelLoadError
from ..models import presets
from ..models.hf import TEXT_POOLING_ATTR, pooled_features, load_parts, text_features, text_tower_features
from ..models.packaged import resolve_tower
from ..models.spec import parse_spec
from .config import ModelConfig
from .text_cache import TextFeatureCache
from .long_text import stretch_positions
from .losses import normalize

log = logging.getLogger(__name__)

TOWERS = {"image": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}


@dataclass
class TrainModel:
    model: nn.Module  # a transformers CLIPModel, SiglipModel or VisionTextDualEncoderModel
    tokenizer: object
    image_processor: object
    family: str  # "clip", "siglip" or "dual"


class ContrastiveModel(nn.Module):
    """The forward pass training needs, in one call, so that DDP sees every parameter used."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        # Towers locked whole, projection included, at construction (locking happens before).
        self.frozen = {tower for tower in TOWERS if not any(p.requires_grad for p in tower_parameters(model, tower))}
        # A text tower locked whole whose projection trains: the tower's pooled features are
        # cached and the projection applied to them each step.
        body, projection = (getattr(model, name, None) for name in TOWERS["text"])
        self.text_projection_only = (
            "text" not in self.frozen
            and projection is not None
            and not any(p.requires_grad for p in body.parameters())
        )
        self.text_cache = TextFeatureCache()

    def _tower(self, tower: str, encode):
        if tower not in self.frozen:
            return encode()
        # A frozen tower runs as at inference: dropout off, and no activations kept for backward.
        for name in TOWERS[tower]:
            module = getattr(self.model, name, None)
            if module is not None:
                module.train(False)
        with torch.no_grad():
            return encode()

    def forward(self, pixel_values: torch.Tensor, **text_inputs: torch.Tensor):
        image = self._tower("image", lambda: pooled_features(self.model.get_image_features(pixel_values=pixel_values)))
        if "text" in self.frozen:
            text = self._tower("text", lambda: self.text_cache(partial(text_features, self.model), **text_inputs))
        elif self.text_projection_only:
            self.model.text_model.train(False)
            with torch.no_grad():
                pooled = self.text_cache(partial(text_tower_features, self.model), **text_inputs)
            text = self.model.text_projection(pooled)
        else:
            text = text_features(self.model, **text_inputs)
        return normalize(image), normalize(text), self.model.logit_scale, getattr(self.model, "logit_bias", None)


def tower_parameters(model: nn.Module, tower: str) -> list[nn.Parameter]:
    """The parameters of one tower (``"image"`` or ``"text"``), its projection included."""
    modules = [getattr(model, name, None) for name in TOWERS[tower]]
    return [p for m in modules if m is not None for p in m.parameters()]


def build_model(config: ModelConfig, seed: int, words: Iterable[str], batch_size: int = 1) -> TrainModel:
    """The model a run starts from. ``words`` are given whole-word tokens in a tokenizer
    built from scratch (the training captions' frequent words)."""
    words = tuple(dict.fromkeys([*presets.DEFAULT_WORDS, *words]))
    if config.init:
        built = load_model_dir(config.init)
        if config.long_text:
            before = stretch_positions(built.model, built.tokenizer, config.long_text, batch_size)
            log.info("text tower stretched from %d to %d positions", before, config.long_text)
    elif config.arch == "dual":
        built = _assemble_dual(config, seed, words)
    else:
        maker = presets.make_clip if config.arch == "clip" else presets.make_siglip
        model, tokenizer, processor = maker(config.preset, seed, words)
        built = TrainModel(model, tokenizer, processor, config.arch)  # initialised by models.init
    lock_towers(built.model, config)
    return built


def load_model_dir(spec: str) -> TrainModel:
    """A CLIP, SigLIP or dual-encoder checkpoint, as clipforge.models.load_encoder reads it."""
    if not spec.startswith("hf:"):
        spec = f"hf:{spec}"
    family, model, tokenizer, processor = load_parts(parse_spec(spec))
    return TrainModel(model, tokenizer, processor, family)


def _load_tower(path: Path, kind: str) -> nn.Module:
    from transformers import AutoConfig, AutoModel, CLIPTextModel, CLIPVisionModel, SiglipTextModel, SiglipVisionModel

    # A full CLIP/SigLIP checkpoint offers either of its towers.
    split = {
        ("clip", "image"): CLIPVisionModel, ("clip", "text"): CLIPTextModel,
        ("siglip", "image"): SiglipVisionModel, ("siglip", "text"): SiglipTextModel,
    }
    try:
        model_type = AutoConfig.from_pretrained(path).model_type
        return split.get((model_type, kind), AutoModel).from_pretrained(path)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load {kind} tower {path}: {str(e).splitlines()[0]}") from None


def _assemble_dual(config: ModelConfig, seed: int, words: tuple[str, ...]) -> TrainModel:
    from transformers import AutoImageProcessor, AutoTokenizer

    vision = text = tokenizer = None
    pooling = "pooler" if config.text_pooling == "auto" else config.text_pooling
    if config.text_tower:
        path = resolve_tower(config.text_tower)
        text, tokenizer = _load_tower(path, "text"), AutoTokenizer.from_pretrained(path)
        if config.text_pooling == "auto" and _is_mean_pooled_sentence_encoder(path):
            pooling = "mean"
    if config.vision_tower:
        vision = _load_tower(resolve_tower(config.vision_tower), "image")
    elif config.vision_arch != "vit":
        vision = presets.make_vision_tower(config.preset, config.vision_arch, seed)
    identity = config.text_projection == "identity"
    model, tokenizer, processor = presets.make_dual_encoder(
        config.preset, seed, words, vision=vision, text=text, tokenizer=tokenizer,
        projection_dim="text" if identity else None,
    )
    if identity:
        _set_identity_text_projection(model)
    if config.vision_tower:
        try:
            processor = AutoImageProcessor.from_pretrained(resolve_tower(config.vision_tower))
        except (OSError, ValueError):
            log.warning("%s has no image processor; using the %s preset's", config.vision_tower, config.preset)
    setattr(model.config, TEXT_POOLING_ATTR, pooling)  # saved in config.json; inference reads it
    log.info("text features: %s pooling", pooling)
    return TrainModel(model, tokenizer, processor, "dual")


def _set_identity_text_projection(model: nn.Module) -> None:
    # A sentence encoder's embedding space is organised by fine differences in cosine
    # similarity; a random projection adds noise of about 1/sqrt(width) to every cosine, which
    # is as large as those differences. With the identity, a locked text tower's embeddings
    # are exactly its own, and only the image side learns to meet them.
    weight = model.text_projection.weight
    if weight.shape[0] != weight.shape[1]:
        raise InputError(
            f"text_projection identity needs the embedding width to equal the text tower's ({weight.shape[1]}), "
            f"got {weight.shape[0]}"
        )
    with torch.no_grad():
        weight.copy_(torch.eye(weight.shape[0], dtype=weight.dtype))


def _is_mean_pooled_sentence_encoder(path: Path) -> bool:
    # sentence-transformers writes its pooling next to the model: 1_Pooling/config.json.
    for config_file in path.glob("*Pooling/config.json"):
        try:
            if json.loads(config_file.read_text()).get("pooling_mode_mean_tokens"):
                return True
        except (OSError, ValueError):
            continue
    return False


def _layer_list(tower: nn.Module) -> tuple[str, nn.ModuleList]:
    # Transformer layers, or a ConvNeXt's stages.
    names = ("layers", "layer", "stages")
    lists = [(n, m) for n, m in tower.named_modules() if isinstance(m, nn.ModuleList) and n.endswith(names)]
    if not lists:
        raise InputError(f"cannot find the layers of {type(tower).__name__} to lock all but the last ones")
    return max(lists, key=lambda item: len(item[1]))


def lock_tower(model: nn.Module, tower: str, unlocked_layers: int = 0, train_projection: bool = False) -> None:
    """Freeze one tower (``"image"`` or ``"text"``), projection included.

    With ``unlocked_layers`` = N > 0 the last N transformer layers and everything after them
    (final norm, pooler or head, projection) stay trainable, as LiT's partial locking does.
    With ``train_projection`` the projection stays trainable whatever else is locked.
    """
    body_name, projection_name = TOWERS[tower]
    body, projection = getattr(model, body_name), getattr(model, projection_name, None)
    if train_projection and projection is None:
        raise InputError(f"this model's {tower} tower has no separate projection to leave trainable")
    for p in body.parameters():
        p.requires_grad_(False)
    if projection is not None:
        projection.requires_grad_(unlocked_layers > 0 or train_projection)
    if unlocked_layers <= 0:
        return
    name, layers = _layer_list(body)
    first_open = max(0, len(layers) - unlocked_layers)
    marker = f"{name}.{first_open}."
    # Parameters are registered in forward order (embeddings, layers, final norm, head):
    # everything from the first unlocked layer on is trainable.
    opened = False
    for pname, p in body.named_parameters():
        opened = opened or pname.startswith(marker)
        p.requires_grad_(opened)


def lock_towers(model: nn.Module, config: ModelConfig) -> None:
    if config.lock_image:
        lock_tower(model, "image", config.lock_image_unlocked_layers)
    if config.lock_text:
        lock_tower(model, "text", config.lock_text_unlocked_layers, config.train_text_projection)
    elif config.train_text_projection:
        raise InputError("train_text_projection needs lock_text: an unlocked text tower trains its projection anyway")
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    if trainable == 0:
        raise InputError("every parameter is locked: unlock a tower or some of its layers")
    log.info("%d of %d parameters are trainable", trainable, sum(p.numel() for p in model.parameters()))


def enable_checkpointing(model: nn.Module) -> None:
    """Recompute activations in the backward pass instead of keeping them."""
    if not getattr(model, "supports_gradient_checkpointing", False):
        raise InputError(f"{type(model).__name__} does not support gradient checkpointing")
    # Non-reentrant checkpointing works with DDP and with frozen inputs (locked towers).
    kwargs = {"use_reentrant": False}
    if hasattr(model, "activation_checkpointing_enable"):  # the newer transformers name
        model.activation_checkpointing_enable(activation_checkpointing_kwargs=kwargs)
    else:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
