"""Randomly initialised dual encoders built from named size presets.

These are the starting point for training from scratch, the tiny checkpoints the test suite
builds with ``save_pretrained``, and the ViT-B/32-shaped model the benchmarks time. Every
one is a complete Hugging Face directory (model, tokenizer, image processor) that
``load_encoder("hf:<dir>")`` opens like any downloaded checkpoint.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path

import torch


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
    "small": Preset(64, 8, 256, 6, 4, 256, 6, 4, 256),
    # The shape of OpenAI's ViT-B/32, for honest throughput figures without a download.
    "base": Preset(224, 32, 768, 12, 12, 512, 12, 8, 512),
}

# A handful of words so tiny tokenizers split common test phrases into whole-word tokens.
DEFAULT_WORDS = (
    "a an the of on in at and photo picture image dog cat bird car red blue green yellow "
    "circle square triangle small large left right beach night day fruit apple"
).split()


def _bytes_to_unicode() -> dict[int, str]:
    # The reversible byte -> printable-character table that GPT-2/CLIP BPE vocabularies use.
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    chars, extra = printable[:], 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            chars.append(256 + extra)
            extra += 1
    return dict(zip(printable, map(chr, chars)))


def build_clip_tokenizer(out_dir: str | Path, words=DEFAULT_WORDS, context_length: int = 77):
    """A real CLIP BPE tokenizer over every byte plus merges for ``words``."""
    from transformers import CLIPTokenizer

    symbols = list(_bytes_to_unicode().values())
    vocab = {s: i for i, s in enumerate(symbols)}
    for s in symbols:
        vocab[s + "</w>"] = len(vocab)
    merges = []
    for word in dict.fromkeys(w.lower() for w in words):
        parts = list(word[:-1]) + [word[-1] + "</w>"]
        while len(parts) > 1:
            merged = parts[0] + parts[1]
            merges.append(f"{parts[0]} {parts[1]}")
            vocab.setdefault(merged, len(vocab))
            parts = [merged] + parts[2:]
    vocab["<|startoftext|>"] = len(vocab)
    vocab["<|endoftext|>"] = len(vocab)
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "vocab.json").write_text(json.dumps(vocab))
        (Path(tmp) / "merges.txt").write_text("#version: 0.2\n" + "\n".join(dict.fromkeys(merges)) + "\n")
        tokenizer = CLIPTokenizer(
            str(Path(tmp) / "vocab.json"), str(Path(tmp) / "merges.txt"), model_max_length=context_length
        )
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


def build_random_clip(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a randomly initialised CLIPModel with its tokenizer and image processor."""
    from transformers import CLIPConfig, CLIPImageProcessor, CLIPModel

    p = PRESETS[preset]
    out = Path(out_dir)
    tokenizer = build_clip_tokenizer(out, words, p.context_length)
    text = _text_kwargs(p, len(tokenizer))
    text.update(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    config = CLIPConfig(text_config=text, vision_config=_vision_kwargs(p), projection_dim=p.embed_dim)
    torch.manual_seed(seed)
    CLIPModel(config).save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": p.image_size}, crop_size={"height": p.image_size, "width": p.image_size}
    ).save_pretrained(out)
    return out


def build_random_siglip(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a randomly initialised SiglipModel with a tokenizer and its image processor."""
    from transformers import SiglipConfig, SiglipImageProcessor, SiglipModel

    p = PRESETS[preset]
    out = Path(out_dir)
    tokenizer = build_clip_tokenizer(out, words, p.context_length)
    config = SiglipConfig(
        text_config=_text_kwargs(p, len(tokenizer)),
        vision_config=_vision_kwargs(p) | {"hidden_size": p.text_width},
    )
    torch.manual_seed(seed)
    SiglipModel(config).save_pretrained(out)
    SiglipImageProcessor(size={"height": p.image_size, "width": p.image_size}).save_pretrained(out)
    return out


def build_random_dual_encoder(out_dir: str | Path, preset: str = "tiny", seed: int = 0, words=DEFAULT_WORDS) -> Path:
    """Save a VisionTextDualEncoderModel: a CLIP vision tower and a BERT text tower."""
    from transformers import (
        BertConfig,
        BertModel,
        BertTokenizer,
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        VisionTextDualEncoderModel,
    )

    p = PRESETS[preset]
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    with tempfile.TemporaryDirectory() as tmp:
        vocab_file = Path(tmp) / "vocab.txt"
        vocab_file.write_text("\n".join(specials + sorted(set(words))) + "\n")
        tokenizer = BertTokenizer(str(vocab_file), model_max_length=p.context_length)
    tokenizer.save_pretrained(out)
    torch.manual_seed(seed)
    vision = CLIPVisionModel(CLIPVisionConfig(**_vision_kwargs(p)))
    text_kwargs = _text_kwargs(p, len(tokenizer))
    text = BertModel(BertConfig(**text_kwargs))
    model = VisionTextDualEncoderModel(vision_model=vision, text_model=text)
    model.config.projection_dim = p.embed_dim
    model = VisionTextDualEncoderModel(config=model.config, vision_model=vision, text_model=text)
    model.save_pretrained(out)
    CLIPImageProcessor(
        size={"shortest_edge": p.image_size}, crop_size={"height": p.image_size, "width": p.image_size}
    ).save_pretrained(out)
    return out


BUILDERS = {"clip": build_random_clip, "siglip": build_random_siglip, "dual": build_random_dual_encoder}
