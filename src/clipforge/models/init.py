"""Initialisation of dual encoders built from scratch, as the CLIP paper's code and open_clip do.

Hugging Face's CLIP init differs from it in ways that matter when training from scratch: the
attention inputs get the depth-scaled (small) deviation and the outputs the large one, the
other way round from CLIP; the vision tower gets the text tower's scheme; patch and position
embeddings use 0.02. A ViT-B/32 so initialised sat at chance on the shapes pairs for 16 steps
(batch 32, lr 5e-4), where open_clip's own trainer left chance at once.

The scheme, for a transformer of width ``w`` and ``L`` layers:

- text: token embedding N(0, 0.02), positions N(0, 0.01); in each layer q/k/v ~ N(0, w^-0.5),
  the attention output and the MLP output ~ N(0, w^-0.5 (2L)^-0.5), the MLP input
  ~ N(0, (2w)^-0.5); attention biases 0;
- vision (a ViT): class embedding and positions ~ N(0, w^-0.5); the layers keep PyTorch's
  defaults (xavier-uniform q/k/v with zero biases, as ``nn.MultiheadAttention`` has; PyTorch's
  uniform for the rest), as CLIP's VisualTransformer did;
- ConvNeXt: timm's: convolutions and linears ``trunc_normal_(std=0.02)`` (whose bounds, +-2,
  are absolute: in effect N(0, 0.02)) with zero biases;
- projections ~ N(0, w^-0.5) of the width they read; layer norms 1 and 0;
- the logit scale ln(1/0.07) (CLIP); SigLIP's t = 10 and bias -10 (its paper).

``init_from_scratch`` applies it to the parts of a model that were built random: towers
given pretrained are left alone.
"""

from __future__ import annotations

import math

import torch
from torch import nn

CLIP_LOGIT_SCALE_INIT = math.log(1 / 0.07)
# SigLIP starts at t = 10, b = -10, so that the many negative pairs do not swamp the first steps.
SIGLIP_LOGIT_SCALE_INIT = math.log(10.0)
SIGLIP_LOGIT_BIAS_INIT = -10.0


def _normal(weight: torch.Tensor, std: float) -> None:
    nn.init.normal_(weight, mean=0.0, std=std)


def _layer_norms(module: nn.Module) -> None:
    for child in module.modules():
        if isinstance(child, nn.LayerNorm):
            nn.init.ones_(child.weight)
            nn.init.zeros_(child.bias)


def _attention_parts(layer: nn.Module):
    attention = layer.self_attn
    return attention, [attention.q_proj, attention.k_proj, attention.v_proj]


def init_text_transformer(text_model: nn.Module) -> None:
    """A CLIP (or SigLIP) text transformer: ``text_model.embeddings`` and ``.encoder.layers``."""
    config = text_model.config
    width, layers = config.hidden_size, config.num_hidden_layers
    attn_std, proj_std, fc_std = width**-0.5, width**-0.5 * (2 * layers) ** -0.5, (2 * width) ** -0.5
    with torch.no_grad():
        _normal(text_model.embeddings.token_embedding.weight, 0.02)
        _normal(text_model.embeddings.position_embedding.weight, 0.01)
        for layer in text_model.encoder.layers:
            attention, inputs = _attention_parts(layer)
            for linear in inputs:
                _normal(linear.weight, attn_std)
                nn.init.zeros_(linear.bias)
            _normal(attention.out_proj.weight, proj_std)
            nn.init.zeros_(attention.out_proj.bias)
            _normal(layer.mlp.fc1.weight, fc_std)
            _normal(layer.mlp.fc2.weight, proj_std)
        _layer_norms(text_model)


def init_vision_transformer(vision_model: nn.Module) -> None:
    """A CLIP (or SigLIP) ViT: ``vision_model.embeddings`` and ``.encoder.layers``."""
    width = vision_model.config.hidden_size
    with torch.no_grad():
        embeddings = vision_model.embeddings
        nn.init.kaiming_uniform_(embeddings.patch_embedding.weight, a=math.sqrt(5))  # nn.Conv2d's own
        if embeddings.patch_embedding.bias is not None:
            nn.init.zeros_(embeddings.patch_embedding.bias)
        if hasattr(embeddings, "class_embedding"):
            _normal(embeddings.class_embedding, width**-0.5)
        _normal(embeddings.position_embedding.weight, width**-0.5)
        for layer in vision_model.encoder.layers:
            attention, inputs = _attention_parts(layer)
            # nn.MultiheadAttention's: xavier-uniform over the stacked (3w, w) in-projection.
            bound = math.sqrt(6.0 / (width + 3 * width))
            for linear in inputs:
                nn.init.uniform_(linear.weight, -bound, bound)
                nn.init.zeros_(linear.bias)
            for linear in (attention.out_proj, layer.mlp.fc1, layer.mlp.fc2):
                linear.reset_parameters()
            nn.init.zeros_(attention.out_proj.bias)
        _layer_norms(vision_model)


def init_convnext(model: nn.Module) -> None:
    with torch.no_grad():
        for child in model.modules():
            if isinstance(child, (nn.Conv2d, nn.Linear)):
                nn.init.trunc_normal_(child.weight, std=0.02)
                if child.bias is not None:
                    nn.init.zeros_(child.bias)
        _layer_norms(model)


def init_projection(linear: nn.Linear) -> None:
    with torch.no_grad():
        _normal(linear.weight, linear.in_features**-0.5)
        if linear.bias is not None:
            nn.init.zeros_(linear.bias)


def _inner(tower: nn.Module) -> nn.Module:
    """The transformer inside a CLIPTextModel/CLIPVisionModel wrapper, or the tower itself."""
    for name in ("text_model", "vision_model"):
        if not hasattr(tower, "embeddings") and hasattr(tower, name):
            return getattr(tower, name)
    return tower


def init_tower(tower: nn.Module) -> None:
    """A tower built at random: CLIP's or SigLIP's transformers, or a ConvNeXt. Any other
    (a BERT, say) keeps its own library's initialisation."""
    body = _inner(tower)
    embeddings = getattr(body, "embeddings", None)
    if getattr(getattr(tower, "config", None), "model_type", None) == "convnext":
        init_convnext(tower)
    elif hasattr(embeddings, "token_embedding"):
        init_text_transformer(body)
    elif hasattr(embeddings, "patch_embedding"):
        init_vision_transformer(body)


def init_from_scratch(model: nn.Module, towers: tuple[str, ...] = ("image", "text")) -> None:
    """Initialise a CLIPModel, SiglipModel or VisionTextDualEncoderModel built at random: the
    ``towers`` named (the others were given pretrained), the projections (always new) and the
    logit scale."""
    names = {"image": ("vision_model", "visual_projection"), "text": ("text_model", "text_projection")}
    for tower, (body, projection) in names.items():
        if tower in towers and getattr(model, body, None) is not None:
            init_tower(getattr(model, body))
        if isinstance(getattr(model, projection, None), nn.Linear):
            init_projection(getattr(model, projection))
    init_logit_params(model)


def init_logit_params(model: nn.Module) -> None:
    with torch.no_grad():
        if getattr(model, "logit_bias", None) is not None:  # SigLIP
            model.logit_scale.fill_(SIGLIP_LOGIT_SCALE_INIT)
            model.logit_bias.fill_(SIGLIP_LOGIT_BIAS_INIT)
        elif hasattr(model, "logit_scale"):
            model.logit_scale.fill_(CLIP_LOGIT_SCALE_INIT)
