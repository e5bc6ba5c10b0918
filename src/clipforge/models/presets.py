"""Randomly initialised dual encoders built from named size presets.

These are the starting point for training from scratch, the tiny checkpoints the test suite
builds with ``save_pretrained``, and the ViT-B/32-shaped model the benchmarks time. Every
one is a complete Hugging Face directory (model, tokenizer, image processor) that
``load_encoder("hf:<dir>")`` opens like any downloaded checkpoint.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch

from .init import init_from_scratch, init_tower


@dataclass(frozen=True)
class Preset:
    image_size: int
    patch_size: int
    vision_width: int
    vision_layers: int
    vision_heads: int
    text_width: int
    text_layers: int
    text_heads: int
    embed_dim: int
    context_length: int = 77


PRESETS = {
    "tiny": Preset(32, 8, 32, 2, 2, 32, 2, 2, 16, context_length=32),
    # A 64-pixel ViT with 16-pixel patches (16 tokens): learns the synthetic shapes dataset
    # in minutes on two CPU cores.
    "mini": Preset(64, 16, 96, 3, 4, 96, 2, 4, 64, context_length=32),
    "small": Preset(64, 8, 256, 6, 4, 256, 6, 4, 256),
    # The shape of OpenAI's ViT-B/32, for honest throughput figures without a download.
    "base": Preset(224, 32, 768, 12, 12, 512, 12, 8, 512),
}

# A handful of words so tiny tokenizers split common test phrases into whole-word tokens.
DEFAULT_WORDS = (
    "a an the of on in at and photo picture image dog cat bird car red blue green yellow "
    "circle square triangle small large left right beach night day fruit apple"
).split()


def build_clip_tokenizer(out_dir: str | Path, words=DEFAULT_WORDS, context_length: int = 77):
    """A real CLIP BPE tokenizer over every byte plus merges for ``words``."""
    from .bpe import clip_tokenizer, word_merges

    tokenizer = clip_tokenizer(word_merges(words), context_length)
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def _vision_kwargs(p: Preset) -> dict:
    return dict(
        hidden_size=p.vision_width,
        intermediate_size=4 * p.vision_width,
        num_hidden_layers=p.vision_layers,
        num_attention_heads=p.vision_heads,
        image_size=p.image_size,
        patch_size=p.patch_size,
    )


def _text_kwargs(p: Preset, vocab_size: int) -> dict:
    return dict(
        vocab_size=vocab_size,
        hidden_size=p.text_width,
        intermediate_size=4 * p.text_width,
        num_hidden_layers=p.text_layers,
        num_attention_heads=p.text_heads,
        max_position_embeddings=p.context_length,
    )


def _image_processor(family: str, p: Preset):
    from transformers import CLIPImageProcessor, SiglipImageProcessor

    if family == "siglip":
        return SiglipImageProcessor(size={"height": p.image_size, "width": p.image_size})
    return CLIPImageProcessor(
        size={"shortest_edge": p.image_size}, crop_size={"height": p.image_size, "width": p.image_size}
    )


def _save(parts: tuple, out_dir: str | Path) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    for part in parts:
        part.save_pretrained(out)
    return out


def _in_tempdir(build):
    # Tokenizers are built from vocabulary files, so even an in-memory model needs a scratch folder.
    with tempfile.TemporaryDirectory() as tmp:
        return build(Path(tmp))


def make_clip(preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS):
    """A randomly initialised CLIPModel with its tokenizer and image processor, in memory."""
    from transformers import CLIPConfig, CLIPModel

    p = get_preset(preset)
    tokenizer = _in_tempdir(lambda tmp: build_clip_tokenizer(tmp, words, p.context_length))
    text = _text_kwargs(p, len(tokenizer))
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(text_config=text, vision_config=_vision_kwargs(p), projection_dim=p.embed_dim)
    torch.manual_seed(seed)
    model = CLIPModel(config)
    init_from_scratch(model)
    return model, tokenizer, _image_processor("clip", p)


def make_siglip(preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS):
    """A randomly initialised SiglipModel with a tokenizer and its image processor, in memory."""
    from transformers import SiglipConfig, SiglipModel

    p = get_preset(preset)
    tokenizer = _in_tempdir(lambda tmp: build_clip_tokenizer(tmp, words, p.context_length))
    text = _text_kwargs(p, len(tokenizer))
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = SiglipConfig(
        text_config=text,
        # SigLIP has no image projection: both towers must end at the same width.
        vision_config=_vision_kwargs(p) | {"hidden_size": p.text_width},
    )
    torch.manual_seed(seed)
    model = SiglipModel(config)
    init_from_scratch(model)
    return model, tokenizer, _image_processor("siglip", p)


def build_bert_tokenizer(words=DEFAULT_WORDS, context_length: int = 77):
    from transformers import BertTokenizer

    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]

    def build(tmp: Path):
        vocab_file = tmp / "vocab.txt"
        vocab_file.write_text("\n".join(specials + sorted(set(words))) + "\n")
        return BertTokenizer(str(vocab_file), model_max_length=context_length)

    return _in_tempdir(build)


# ConvNeXt image towers per preset: (widths of the stages, blocks per stage). "small" has the
# same parameter count as the preset's ViT (4.8M) and about its speed on a CPU.
CONVNEXT_STAGES = {
    "tiny": ((8, 16, 32), (1, 1, 1)),
    "mini": ((24, 48, 96), (1, 1, 2)),
    "small": ((48, 96, 192, 384), (2, 2, 6, 2)),
    "base": ((96, 192, 384, 768), (3, 3, 9, 3)),
}


def make_vision_tower(preset: str = "tiny", arch: str = "vit", seed: int | None = None):
    """A random image tower of the preset's input size: CLIP's ViT, or a ConvNeXt (as in
    open_clip's ConvNeXt CLIPs). ``seed`` seeds its initialisation alone."""
    from transformers import CLIPVisionConfig, CLIPVisionModel, ConvNextConfig, ConvNextModel

    p = get_preset(preset)
    if seed is not None:
        torch.manual_seed(seed)
    if arch == "vit":
        tower = CLIPVisionModel(CLIPVisionConfig(**_vision_kwargs(p)))
        init_tower(tower)
        return tower
    if arch != "convnext":
        from ..errors import InputError

        raise InputError(f"unknown vision arch {arch!r}; choose vit or convnext")
    widths, depths = CONVNEXT_STAGES[preset]
    config = ConvNextConfig(
        num_channels=3, num_stages=len(widths), hidden_sizes=list(widths), depths=list(depths),
        patch_size=4 if p.image_size >= 128 else 2,  # small inputs keep more of their resolution
        image_size=p.image_size,
        # VisionTextDualEncoderModel sizes the projection from hidden_size, which ConvNeXt's
        # config lacks; its pooled output is the last stage's width.
        hidden_size=widths[-1],
    )
    tower = ConvNextModel(config)
    init_tower(tower)
    return tower


def make_dual_encoder(
    preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS, vision=None, text=None, tokenizer=None,
    projection_dim: int | str | None = None,
):
    """A VisionTextDualEncoderModel, in memory. ``vision``/``text`` are pretrained towers to
    assemble (LiT-style); a tower not given is a random one of the preset's size (CLIP vision,
    BERT text). The projections and logit scale are always new. ``projection_dim`` is the
    embedding width: the preset's by default, or ``"text"`` for the text tower's own."""
    from transformers import BertConfig, BertModel, VisionTextDualEncoderConfig, VisionTextDualEncoderModel

    p = get_preset(preset)
    torch.manual_seed(seed)
    if tokenizer is None:
        tokenizer = build_bert_tokenizer(words, p.context_length)
    vision = vision if vision is not None else make_vision_tower(preset)
    text = text if text is not None else BertModel(BertConfig(**_text_kwargs(p, len(tokenizer))))
    if projection_dim == "text":
        projection_dim = text.config.hidden_size
    config = VisionTextDualEncoderConfig.from_vision_text_configs(
        vision.config, text.config, projection_dim=projection_dim or p.embed_dim
    )
    model = VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text)
    init_from_scratch(model, towers=())  # the towers are initialised where they were made (or pretrained)
    return model, tokenizer, _image_processor("dual", p)


def build_random_clip(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a randomly initialised CLIPModel with its tokenizer and image processor."""
    return _save(make_clip(preset, seed, words), out_dir)


def build_random_siglip(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a randomly initialised SiglipModel with a tokenizer and its image processor."""
    return _save(make_siglip(preset, seed, words), out_dir)


def build_random_dual_encoder(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a VisionTextDualEncoderModel: a CLIP vision tower and a BERT text tower."""
    return _save(make_dual_encoder(preset, seed, words), out_dir)


def get_preset(name: str) -> Preset:
    from ..errors import InputError

    if name not in PRESETS:
        raise InputError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return PRESETS[name]


BUILDERS = {"clip": build_random_clip, "siglip": build_random_siglip, "dual": build_random_dual_encoder}
MAKERS = {"clip": make_clip, "siglip": make_siglip, "dual": make_dual_encoder}
