"""SigLIP2 and a multilingual (XLM-R) dual encoder: each against transformers' own forward pass,
through torch and through an ONNX export.

The tiny checkpoints, saved with save_pretrained: SigLIP2 at a fixed resolution (transformers
holds these as SiglipModels with a Gemma tokenizer), SigLIP2 NaFlex (a Siglip2Model), and a
multilingual dual encoder (an XLM-R text tower, mean-pooled into a projection, as M-CLIP)."""

from __future__ import annotations

import string
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from clipforge.errors import ModelLoadError
from clipforge.models import load_encoder
from clipforge.models.hf import tokenize_texts
from clipforge.models.onnx_export import export_onnx
from clipforge.models.presets import DEFAULT_WORDS, get_preset, make_siglip, make_vision_tower

from conftest import make_photo

TEXTS = ["a photo of a dog", "ein Hund am Strand", "le chat sur la plage", "el perro en la playa", ""]
MULTILINGUAL_WORDS = ["hund", "strand", "am", "der", "chat", "le", "la", "plage", "perro", "playa", "el", "en"]


def gemma_tokenizer():
    """A Gemma BPE tokenizer (SigLIP2's) over the test words: '▁word' tokens and single characters."""
    from transformers import GemmaTokenizer

    vocab = {t: i for i, t in enumerate(["<pad>", "<eos>", "<bos>", "<unk>", "<mask>"])}
    for char in ["▁", *string.ascii_letters, *string.digits, *string.punctuation]:
        vocab.setdefault(char, len(vocab))
    merges = []
    for word in DEFAULT_WORDS:
        parts = ["▁", *word]
        while len(parts) > 1:
            merges.append((parts[0], parts[1]))
            vocab.setdefault(parts[0] + parts[1], len(vocab))
            parts = [parts[0] + parts[1], *parts[2:]]
    # big_vision pads SigLIP2's texts on the right, to 64 tokens, and attends to the padding
    return GemmaTokenizer(vocab=vocab, merges=list(dict.fromkeys(merges)), model_max_length=64, padding_side="right")


def xlmr_tokenizer():
    """An XLM-R sentencepiece-unigram tokenizer over words of a few languages."""
    from transformers import XLMRobertaTokenizer

    pieces = [("<s>", 0.0), ("<pad>", 0.0), ("</s>", 0.0), ("<unk>", 0.0)]
    pieces += [("▁" + w, -1.0) for w in dict.fromkeys(MULTILINGUAL_WORDS + DEFAULT_WORDS)]
    pieces += [(c, -5.0) for c in string.ascii_letters + string.digits + string.punctuation] + [("▁", -3.0)]
    return XLMRobertaTokenizer(vocab=pieces, model_max_length=32)


def _save(out: Path, *parts) -> Path:
    for part in parts:
        part.save_pretrained(out)
    return out


@pytest.fixture(scope="module")
def tiny_siglip2_dir(tmp_path_factory) -> Path:
    """A fixed-resolution SigLIP2: transformers holds these as SiglipModels with a Gemma tokenizer."""
    from transformers import SiglipConfig, SiglipModel

    tokenizer = gemma_tokenizer()
    model, _, processor = make_siglip("tiny", seed=3)
    config = model.config.to_dict()
    config["text_config"].update(vocab_size=len(tokenizer), max_position_embeddings=64, pad_token_id=0,
                                 bos_token_id=2, eos_token_id=1)
    model = SiglipModel(SiglipConfig(text_config=config["text_config"], vision_config=config["vision_config"]))
    return _save(tmp_path_factory.mktemp("tiny-siglip2"), model, tokenizer, processor)


@pytest.fixture(scope="module")
def tiny_siglip2_naflex_dir(tmp_path_factory) -> Path:
    from transformers import Siglip2Config, Siglip2ImageProcessor, Siglip2Model

    p, tokenizer = get_preset("tiny"), gemma_tokenizer()
    text = dict(vocab_size=len(tokenizer), hidden_size=p.text_width, intermediate_size=4 * p.text_width,
                num_hidden_layers=1, num_attention_heads=p.text_heads, max_position_embeddings=64)
    vision = dict(hidden_size=p.text_width, intermediate_size=4 * p.text_width, num_hidden_layers=1,
                  num_attention_heads=p.text_heads, patch_size=8, num_patches=16)
    model = Siglip2Model(Siglip2Config(text_config=text, vision_config=vision))
    processor = Siglip2ImageProcessor(patch_size=8, max_num_patches=16)
    return _save(tmp_path_factory.mktemp("tiny-siglip2-naflex"), model, tokenizer, processor)


@pytest.fixture(scope="module")
def tiny_multilingual_dir(tmp_path_factory) -> Path:
    """A VisionTextDualEncoderModel with an XLM-R text tower, mean-pooled into a projection (M-CLIP's recipe)."""
    from transformers import (
        CLIPImageProcessor, VisionTextDualEncoderConfig, VisionTextDualEncoderModel, XLMRobertaConfig,
        XLMRobertaModel,
    )

    from clipforge.models.hf import TEXT_POOLING_ATTR

    p, tokenizer = get_preset("tiny"), xlmr_tokenizer()
    text = XLMRobertaModel(XLMRobertaConfig(
        vocab_size=len(tokenizer), hidden_size=p.text_width, intermediate_size=4 * p.text_width,
        num_hidden_layers=p.text_layers, num_attention_heads=p.text_heads, max_position_embeddings=34,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=0, eos_token_id=2,
    ))
    vision = make_vision_tower("tiny", seed=4)
    config = VisionTextDualEncoderConfig.from_vision_text_configs(vision.config, text.config, projection_dim=p.embed_dim)
    setattr(config, TEXT_POOLING_ATTR, "mean")
    model = VisionTextDualEncoderModel(config=config, vision_model=vision, text_model=text)
    processor = CLIPImageProcessor(size={"shortest_edge": p.image_size},
                                   crop_size={"height": p.image_size, "width": p.image_size})
    return _save(tmp_path_factory.mktemp("tiny-multilingual"), model, tokenizer, processor)


def _unit(x) -> np.ndarray:
    x = getattr(x, "pooler_output", x).detach().float().numpy()
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def _images(tmp_path) -> list[Image.Image]:
    return [Image.open(make_photo(tmp_path / f"{i}.jpg", size=(40 + 9 * i, 36), seed=i)) for i in range(4)]


def test_siglip2_fixed_resolution_matches_transformers(tiny_siglip2_dir, tmp_path):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_siglip2_dir).eval()
    tokenizer, processor = AutoTokenizer.from_pretrained(tiny_siglip2_dir), AutoImageProcessor.from_pretrained(tiny_siglip2_dir)
    images = _images(tmp_path)
    ids = tokenizer(TEXTS, padding="max_length", max_length=64, return_tensors="pt")["input_ids"]
    with torch.no_grad():  # trained as big_vision does: padded to 64 tokens, no attention mask
        text = _unit(model.get_text_features(input_ids=ids))
        image = _unit(model.get_image_features(**processor(images, return_tensors="pt")))
    encoder = load_encoder(f"hf:{tiny_siglip2_dir}", device="cpu", precision="fp32")
    assert encoder.family == "siglip" and encoder.max_text_length == 64
    assert (encoder.encode_texts(TEXTS) * text).sum(1).min() >= 0.9999
    assert (encoder.encode_images(images) * image).sum(1).min() >= 0.9999


def test_siglip2_naflex_is_refused_in_one_line(tiny_siglip2_naflex_dir):
    with pytest.raises(ModelLoadError, match="NaFlex") as caught:
        load_encoder(f"hf:{tiny_siglip2_naflex_dir}", device="cpu", precision="fp32")
    assert "\n" not in str(caught.value) and str(tiny_siglip2_naflex_dir) in str(caught.value)


def test_multilingual_text_tower_matches_transformers(tiny_multilingual_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(tiny_multilingual_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_multilingual_dir)
    inputs = tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():  # M-CLIP: the mean of the token states over the mask, then the projection
        states = model.text_model(**inputs).last_hidden_state
        mask = inputs["attention_mask"].unsqueeze(-1).float()
        text = _unit(model.text_projection((states * mask).sum(1) / mask.sum(1)))
    encoder = load_encoder(f"hf:{tiny_multilingual_dir}", device="cpu", precision="fp32")
    vectors = encoder.encode_texts(TEXTS)
    assert (vectors * text).sum(1).min() >= 0.9999
    assert np.abs(vectors[1] - vectors[2]).max() > 1e-3  # different languages, different words


@pytest.mark.parametrize("fixture", ["tiny_siglip2_dir", "tiny_multilingual_dir"])
def test_onnx_export_matches_torch(request, tmp_path, fixture):
    folder = request.getfixturevalue(fixture)
    export_onnx(f"hf:{folder}", tmp_path / "onnx")
    torch_encoder = load_encoder(f"hf:{folder}", device="cpu", precision="fp32")
    onnx_encoder = load_encoder(f"onnx:{tmp_path / 'onnx'}", precision="fp32")
    expected = tokenize_texts(torch_encoder.tokenizer, torch_encoder.family, TEXTS, torch_encoder.max_text_length)
    feeds = onnx_encoder._feeds(TEXTS)
    for name, values in expected.items():
        np.testing.assert_array_equal(feeds[name], values.numpy())
    assert (onnx_encoder.encode_texts(TEXTS) * torch_encoder.encode_texts(TEXTS)).sum(1).min() >= 0.9999
    images = _images(tmp_path)
    assert (onnx_encoder.encode_images(images) * torch_encoder.encode_images(images)).sum(1).min() >= 0.9999
