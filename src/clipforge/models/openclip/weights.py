"""open_clip state dicts, renamed into transformers' CLIPModel and ConvNeXt dual encoders.

open_clip stores a transformer block's query, key and value projections as one matrix
(``attn.in_proj_weight``) and its projections as ``x @ P`` matrices; transformers keeps
three Linear layers and ``Linear(x) = x @ W.T``. Everything else is a rename. Every key of the
checkpoint must find a place and every parameter of the model must be filled: a checkpoint
that does not fit its config is refused, not loaded half.
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from ...errors import ModelLoadError

_BLOCK = {
    "ln_1": "layer_norm1", "ln_2": "layer_norm2", "attn.out_proj": "self_attn.out_proj",
    "mlp.c_fc": "mlp.fc1", "mlp.c_proj": "mlp.fc2",
}
_CONVNEXT_BLOCK = {"conv_dw": "dwconv", "norm": "layernorm", "mlp.fc1": "pwconv1", "mlp.fc2": "pwconv2"}


def read_state_dict(spec, path: Path) -> dict[str, torch.Tensor]:
    """The tensors of an open_clip checkpoint: a training checkpoint (``{"state_dict": ...}``,
    perhaps with DDP's ``module.`` prefix), a plain state dict, or safetensors."""
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(path)
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch.load raises many kinds for a file that is not a checkpoint
        first = str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__
        raise ModelLoadError(f"{spec}: cannot read checkpoint {path.name}: {first}") from None
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ModelLoadError(f"{spec}: {path.name} holds no state dict of tensors")
    if all(k.startswith("module.") for k in state):
        state = {k[len("module."):]: v for k, v in state.items()}
    # CustomTextCLIP keeps the text tower under "text."; CLIP keeps it at the top level.
    return {k[len("text."):] if k.startswith("text.") else k: v.float() for k, v in state.items()}


def _block(prefix: str, rest: str, state: dict, out: dict) -> None:
    """One transformer block's tensors under ``prefix`` (``...layers.N.``) in transformers' names."""
    if rest.startswith("attn.in_proj_"):
        kind = rest.rsplit("_", 1)[1]  # weight or bias
        for name, part in zip(("q_proj", "k_proj", "v_proj"), state.chunk(3, dim=0)):
            out[f"{prefix}self_attn.{name}.{kind}"] = part.clone()
        return
    for theirs, ours in _BLOCK.items():
        if rest.startswith(theirs + "."):
            out[prefix + ours + rest[len(theirs):]] = state
            return
    raise KeyError(rest)


def _text(key: str, value: torch.Tensor, out: dict) -> bool:
    if key == "token_embedding.weight":
        out["text.embeddings.token_embedding.weight"] = value
    elif key == "positional_embedding":
        out["text.embeddings.position_embedding.weight"] = value
    elif key.startswith("ln_final."):
        out["text.final_layer_norm." + key.split(".", 1)[1]] = value
    elif key == "text_projection":
        out["text_projection.weight"] = value.t().contiguous()
    elif m := re.fullmatch(r"transformer\.resblocks\.(\d+)\.(.+)", key):
        _block(f"text.encoder.layers.{m[1]}.", m[2], value, out)
    else:
        return False
    return True


def _vit(key: str, value: torch.Tensor, out: dict) -> bool:
    simple = {
        "visual.conv1.weight": "vision.embeddings.patch_embedding.weight",
        "visual.class_embedding": "vision.embeddings.class_embedding",
        "visual.positional_embedding": "vision.embeddings.position_embedding.weight",
    }
    if key in simple:
        out[simple[key]] = value
    elif key.startswith("visual.ln_pre."):
        out["vision.pre_layrnorm." + key.rsplit(".", 1)[1]] = value  # sic: transformers' name
    elif key.startswith("visual.ln_post."):
        out["vision.post_layernorm." + key.rsplit(".", 1)[1]] = value
    elif key == "visual.proj":
        out["visual_projection.weight"] = value.t().contiguous()
    elif m := re.fullmatch(r"visual\.transformer\.resblocks\.(\d+)\.(.+)", key):
        _block(f"vision.encoder.layers.{m[1]}.", m[2], value, out)
    else:
        return False
    return True


def _convnext(key: str, value: torch.Tensor, out: dict) -> bool:
    leaf = key.rsplit(".", 1)[1]
    if m := re.fullmatch(r"visual\.trunk\.stem\.([01])\.(weight|bias)", key):
        out[f"vision.embeddings.{'patch_embeddings' if m[1] == '0' else 'layernorm'}.{leaf}"] = value
    elif m := re.fullmatch(r"visual\.trunk\.stages\.(\d+)\.downsample\.([01])\.(weight|bias)", key):
        out[f"vision.encoder.stages.{m[1]}.downsampling_layer.{m[2]}.{leaf}"] = value
    elif m := re.fullmatch(r"visual\.trunk\.stages\.(\d+)\.blocks\.(\d+)\.(.+)", key):
        prefix, rest = f"vision.encoder.stages.{m[1]}.layers.{m[2]}.", m[3]
        if rest == "gamma":
            out[prefix + "layer_scale_parameter"] = value
        else:
            module, _, leaf = rest.rpartition(".")
            out[prefix + _CONVNEXT_BLOCK[module] + "." + leaf] = value
    elif key.startswith("visual.trunk.head.norm."):
        out["vision.layernorm." + leaf] = value
    elif key == "visual.head.proj.weight":
        out["visual_projection.weight"] = value
    else:
        return False
    return True


def to_transformers(spec, state: dict[str, torch.Tensor], family: str) -> dict[str, torch.Tensor]:
    """The checkpoint's tensors under neutral names: ``text.*`` and ``vision.*`` for the towers'
    transformer modules, ``text_projection.weight``, ``visual_projection.weight``, ``logit_scale``."""
    vision = _vit if family == "vit" else _convnext
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key == "logit_scale":
            out["logit_scale"] = value.reshape(())
            continue
        if key in ("attn_mask", "logit_bias") or key.endswith("position_ids"):
            continue  # buffers some versions saved; logit_bias only in models refused earlier
        try:
            if not (_text(key, value, out) or vision(key, value, out)):
                raise KeyError(key)
        except KeyError:
            raise ModelLoadError(f"{spec}: checkpoint key {key!r} has no place in an open_clip "
                                 f"{'ViT' if family == 'vit' else 'ConvNeXt'} CLIP of this config") from None
    return out


def _towers(model):
    """(text transformer, vision transformer) modules, whatever wraps them."""
    text, vision = model.text_model, model.vision_model
    return getattr(text, "text_model", text), getattr(vision, "vision_model", vision)


def _split(model, tensors: dict[str, torch.Tensor]) -> list[tuple[str, torch.nn.Module, dict, tuple | None]]:
    """(name, module, its tensors, the only keys it must have or None for all of them) per part."""
    text, vision = _towers(model)
    parts = {"text": {}, "vision": {}, "heads": {}}
    for key, value in tensors.items():
        head, _, rest = key.partition(".")
        if head in ("text", "vision"):
            parts[head][rest] = value
        else:
            parts["heads"][key] = value
    heads = ("text_projection.weight", "visual_projection.weight", "logit_scale")
    return [("text", text, parts["text"], None), ("vision", vision, parts["vision"], None),
            ("heads", model, parts["heads"], heads)]


def check_fit(spec, model, tensors: dict[str, torch.Tensor]) -> None:
    """ModelLoadError unless ``to_transformers``' tensors fill ``model`` exactly, shapes included."""
    for name, module, state, only in _split(model, tensors):
        own = {k: tuple(v.shape) for k, v in module.state_dict().items()}
        missing = sorted(set(only or own) - set(state))
        if missing:
            more = f" and {len(missing) - 1} more" if len(missing) > 1 else ""
            raise ModelLoadError(f"{spec}: the checkpoint does not fit its config: {name} lacks {missing[0]}{more}")
        for key, value in state.items():
            if own.get(key) != tuple(value.shape):
                raise ModelLoadError(f"{spec}: the checkpoint does not fit its config: {key} is "
                                     f"{tuple(value.shape)} in the checkpoint, {own.get(key)} in the config")


def load_into(spec, model, tensors: dict[str, torch.Tensor]) -> None:
    """Fill ``model`` (CLIPModel or VisionTextDualEncoderModel) with ``to_transformers``' tensors."""
    check_fit(spec, model, tensors)
    with torch.no_grad():
        for _, module, state, _ in _split(model, tensors):
            own = module.state_dict()
            for key, value in state.items():
                own[key].copy_(value)
