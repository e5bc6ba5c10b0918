"""open_clip model configs: which ones clipforge reads, and the Hugging Face configs they become.

open_clip's configs (``embed_dim``, ``vision_cfg``, ``text_cfg``) describe many towers.
clipforge reads the two families that map exactly onto transformers' classes:

- a ViT image tower of open_clip's own (class-token pooling, pre-norm): CLIPModel's;
- a timm ConvNeXt image tower with a linear projection: ConvNextModel, in a
  VisionTextDualEncoderModel;

each with open_clip's own causal text transformer (pooled at the end-of-text token), which
is CLIPTextModel's. Any other setting is refused, naming it, rather than loaded into a model
that would compute something else. ``configs.json`` holds the named configs of these two
families, copied from open_clip's ``model_configs/``.
"""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from ...errors import ModelLoadError

NAMED_CONFIGS_FILE = Path(__file__).with_name("configs.json")
OPENAI_MEAN = (0.48145466, 0.4578275, 0.40821073)
OPENAI_STD = (0.26862954, 0.26130258, 0.27577711)

# timm's ConvNeXt sizes: (blocks per stage, widths of the stages, layer norm eps).
CONVNEXT_SIZES = {
    "convnext_tiny": ((3, 3, 9, 3), (96, 192, 384, 768), 1e-6),
    "convnext_small": ((3, 3, 27, 3), (96, 192, 384, 768), 1e-6),
    "convnext_base": ((3, 3, 27, 3), (128, 256, 512, 1024), 1e-6),
    "convnext_large": ((3, 3, 27, 3), (192, 384, 768, 1536), 1e-6),
    "convnext_xlarge": ((3, 3, 27, 3), (256, 512, 1024, 2048), 1e-6),
    "convnext_xxlarge": ((3, 4, 30, 3), (384, 768, 1536, 3072), 1e-5),
}

# Settings whose default is the only value a transformers class can reproduce.
_VIT_DEFAULTS = {
    "ls_init_value": None, "attentional_pool": False, "no_ln_pre": False, "pool_type": "tok",
    "pos_embed_type": "learnable", "block_type": None, "qk_norm": False, "scaled_cosine_attn": False,
    "scale_heads": False, "scale_attn_inner": False, "scale_attn": False, "scale_fc": False,
}
_VIT_KNOWN = {"layers", "width", "head_width", "mlp_ratio", "patch_size", "image_size", "patch_dropout",
              "final_ln_after_pool", "output_tokens", "act_kwargs", "norm_kwargs", "attn_pooler_queries",
              "attn_pooler_heads", *_VIT_DEFAULTS}
_TIMM_KNOWN = {"timm_model_name", "timm_model_pretrained", "timm_pool", "timm_proj", "timm_proj_bias",
               "timm_drop", "timm_drop_path", "timm_model_kwargs", "image_size", "patch_dropout", "output_tokens"}
_TEXT_DEFAULTS = {
    "text_arch": "clip", "hf_model_name": None, "embed_cls": False, "no_causal_mask": False, "proj_bias": False,
    "proj_type": "linear", "ls_init_value": None, "variable_text": False, "tokenizer_type": "",
    "hf_tokenizer_name": None, "tokenizer_kwargs": None, "block_type": None, "qk_norm": False,
    "scaled_cosine_attn": False, "scale_heads": False, "scale_attn_inner": False, "scale_attn": False,
    "scale_fc": False,
}
_TEXT_KNOWN = {"context_length", "vocab_size", "width", "heads", "layers", "mlp_ratio", "pad_id", "bos_id", "eos_id",
               "pool_type", "output_tokens", "act_kwargs", "norm_kwargs", "final_ln_after_pool", *_TEXT_DEFAULTS}
_TOP_KNOWN = {"embed_dim", "vision_cfg", "text_cfg", "quick_gelu", "custom_text", "init_logit_scale"}


@lru_cache(maxsize=1)
def named_configs() -> dict[str, dict]:
    return json.loads(NAMED_CONFIGS_FILE.read_text())


def named_config(spec, name: str) -> dict:
    configs = named_configs()
    if name not in configs:
        close = [n for n in configs if n.lower().startswith(name.lower().split("-")[0].lower())][:6]
        hint = f" (such as {', '.join(close)})" if close else ""
        raise ModelLoadError(f"{spec}: unknown open_clip config {name!r}; clipforge reads open_clip's ViT and "
                             f"ConvNeXt configs{hint}")
    return json.loads(json.dumps(configs[name]))


def read_config_file(spec, path: Path) -> tuple[dict, dict]:
    """(model config, preprocessing config) of an ``open_clip_config.json``."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"{spec}: cannot read {path.name}: {e}") from None
    if not isinstance(data, dict):
        raise ModelLoadError(f"{spec}: {path.name} is not a JSON object")
    return data.get("model_cfg", data), data.get("preprocess_cfg") or {}


def _refuse(spec, where: str, key: str, value) -> None:
    raise ModelLoadError(f"{spec}: open_clip setting {where}.{key}={value!r} is not supported "
                         f"(clipforge reads ViT and ConvNeXt CLIPs with open_clip's own text tower)")


def _check_defaults(spec, where: str, cfg: dict, defaults: dict, known: set) -> None:
    for key, value in cfg.items():
        if key not in known:
            _refuse(spec, where, key, value)
        if key in defaults and value != defaults[key] and value not in (None, False, "", {}):
            _refuse(spec, where, key, value)


def check_supported(spec, cfg: dict) -> str:
    """The image tower family of a config ("vit" or "convnext"), or ModelLoadError naming
    the first setting clipforge cannot reproduce."""
    for key, value in cfg.items():
        if key not in _TOP_KNOWN:
            _refuse(spec, "model", key, value)
    vision, text = cfg.get("vision_cfg") or {}, cfg.get("text_cfg") or {}
    if "embed_dim" not in cfg:
        raise ModelLoadError(f"{spec}: the open_clip config has no embed_dim")
    _check_defaults(spec, "text_cfg", text, _TEXT_DEFAULTS, _TEXT_KNOWN)
    if text.get("pool_type", "argmax") not in ("argmax", "eos"):
        _refuse(spec, "text_cfg", "pool_type", text["pool_type"])
    if vision.get("timm_model_name"):
        return _check_convnext(spec, vision)
    _check_defaults(spec, "vision_cfg", vision, _VIT_DEFAULTS, _VIT_KNOWN)
    if not isinstance(vision.get("layers", 12), int):
        _refuse(spec, "vision_cfg", "layers", vision["layers"])  # a ModifiedResNet
    if not isinstance(vision.get("image_size", 224), int):
        _refuse(spec, "vision_cfg", "image_size", vision["image_size"])
    return "vit"


def _check_convnext(spec, vision: dict) -> str:
    for key, value in vision.items():
        if key not in _TIMM_KNOWN:
            _refuse(spec, "vision_cfg", key, value)
    name = vision["timm_model_name"]
    if name not in CONVNEXT_SIZES:
        _refuse(spec, "vision_cfg", "timm_model_name", name)
    if vision.get("timm_pool", "avg") not in ("", "avg"):
        _refuse(spec, "vision_cfg", "timm_pool", vision["timm_pool"])
    if vision.get("timm_proj", "linear") != "linear":
        _refuse(spec, "vision_cfg", "timm_proj", vision["timm_proj"])
    if vision.get("timm_proj_bias"):
        _refuse(spec, "vision_cfg", "timm_proj_bias", True)
    for key in set(vision.get("timm_model_kwargs") or {}) - {"depths", "dims", "drop_path_rate"}:
        _refuse(spec, "vision_cfg.timm_model_kwargs", key, vision["timm_model_kwargs"][key])
    if not isinstance(vision.get("image_size", 224), int):
        _refuse(spec, "vision_cfg", "image_size", vision["image_size"])
    return "convnext"


def _activation(cfg: dict, tower: dict) -> str:
    if (tower.get("act_kwargs") or {}).get("approximate") == "tanh":
        return "gelu_pytorch_tanh"
    return "quick_gelu" if cfg.get("quick_gelu") else "gelu"


def _eps(tower: dict) -> float:
    return float((tower.get("norm_kwargs") or {}).get("eps", 1e-5))


def text_config_kwargs(cfg: dict, bos_id: int, eos_id: int) -> dict:
    """CLIPTextConfig arguments for an open_clip text tower."""
    text = cfg["text_cfg"]
    width = int(text.get("width", 512))
    return dict(
        vocab_size=int(text.get("vocab_size", 49408)), hidden_size=width,
        intermediate_size=int(width * float(text.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(text.get("layers", 12)), num_attention_heads=int(text.get("heads", 8)),
        max_position_embeddings=int(text.get("context_length", 77)), hidden_act=_activation(cfg, text),
        layer_norm_eps=_eps(text), bos_token_id=bos_id, eos_token_id=eos_id, pad_token_id=int(text.get("pad_id", 0)),
        projection_dim=int(cfg["embed_dim"]),
    )


def vit_config_kwargs(cfg: dict) -> dict:
    """CLIPVisionConfig arguments for an open_clip ViT."""
    vision = cfg["vision_cfg"]
    width = int(vision.get("width", 768))
    return dict(
        hidden_size=width, intermediate_size=int(width * float(vision.get("mlp_ratio", 4.0))),
        num_hidden_layers=int(vision.get("layers", 12)),
        num_attention_heads=width // int(vision.get("head_width", 64)),
        image_size=int(vision.get("image_size", 224)), patch_size=int(vision.get("patch_size", 16)),
        hidden_act=_activation(cfg, vision), layer_norm_eps=_eps(vision), projection_dim=int(cfg["embed_dim"]),
    )


def convnext_config_kwargs(cfg: dict) -> dict:
    """ConvNextConfig arguments for an open_clip timm ConvNeXt."""
    vision = cfg["vision_cfg"]
    depths, dims, eps = CONVNEXT_SIZES[vision["timm_model_name"]]
    extra = vision.get("timm_model_kwargs") or {}
    depths, dims = list(extra.get("depths", depths)), list(extra.get("dims", dims))
    return dict(
        num_channels=3, num_stages=len(dims), hidden_sizes=dims, depths=depths, patch_size=4,
        image_size=int(vision.get("image_size", 224)), hidden_act="gelu",
        # The final norm (timm's head norm) takes this eps; transformers fixes the blocks' at
        # 1e-6, which convnext_xxlarge's 1e-5 differs from by far less than float32 noise
        # wherever a channel's variance is not tiny.
        layer_norm_eps=eps,
        # VisionTextDualEncoderModel sizes the projection from hidden_size, which ConvNeXt's
        # config lacks; its pooled output is the last stage's width.
        hidden_size=dims[-1],
    )


def image_processor_kwargs(spec, cfg: dict, preprocess: dict) -> dict:
    """CLIPImageProcessor arguments for open_clip's eval preprocessing."""
    from PIL import Image

    size = int(cfg["vision_cfg"].get("image_size", 224))
    mode = preprocess.get("resize_mode", "shortest")
    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "nearest": Image.Resampling.NEAREST}
    interpolation = preprocess.get("interpolation", "bicubic")
    if interpolation not in filters:
        _refuse(spec, "preprocess_cfg", "interpolation", interpolation)
    common = dict(image_mean=list(preprocess.get("mean", OPENAI_MEAN)), image_std=list(preprocess.get("std", OPENAI_STD)),
                  resample=int(filters[interpolation]), do_convert_rgb=True)
    if mode == "shortest":
        return dict(size={"shortest_edge": size}, crop_size={"height": size, "width": size}, do_center_crop=True,
                    **common)
    if mode == "squash":
        return dict(size={"height": size, "width": size}, do_center_crop=False, **common)
    _refuse(spec, "preprocess_cfg", "resize_mode", mode)
