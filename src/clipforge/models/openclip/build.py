"""Empty transformers models shaped as an open_clip config says, and its image processor."""

from __future__ import annotations

from .config import convnext_config_kwargs, image_processor_kwargs, text_config_kwargs, vit_config_kwargs


def build_model(cfg: dict, tower: str, bos_id: int, eos_id: int):
    """(clipforge family, model): CLIPModel for a ViT, VisionTextDualEncoderModel for a ConvNeXt.

    Its weights are left uninitialised: the checkpoint fills every one of them (``weights.check_fit``),
    and drawing 150M random numbers first cost a ViT-B/32 a second of every load."""
    from transformers.initialization import no_init_weights

    with no_init_weights():
        return _build(cfg, tower, bos_id, eos_id)


def _build(cfg: dict, tower: str, bos_id: int, eos_id: int):
    from transformers import (
        CLIPConfig, CLIPModel, CLIPTextConfig, CLIPTextModel, ConvNextConfig, ConvNextModel,
        VisionTextDualEncoderConfig, VisionTextDualEncoderModel,
    )

    text = text_config_kwargs(cfg, bos_id, eos_id)
    if tower == "vit":
        config = CLIPConfig(text_config=text, vision_config=vit_config_kwargs(cfg), projection_dim=int(cfg["embed_dim"]))
        return "clip", CLIPModel(config)
    vision = ConvNextModel(ConvNextConfig(**convnext_config_kwargs(cfg)))
    text_model = CLIPTextModel(CLIPTextConfig(**text))
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config, text_model.config, projection_dim=int(cfg["embed_dim"])
    )
    return "dual", VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text_model)


def image_processor(spec, cfg: dict, preprocess: dict):
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor(**image_processor_kwargs(spec, cfg, preprocess))
