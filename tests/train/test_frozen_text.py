"""A text tower locked whole (LiT) runs in eval mode without gradients, and each caption's
features are computed once per run; with train_text_projection only its projection trains;
with text_projection identity its embeddings are the tower's own."""

from __future__ import annotations

import pytest
import torch

from clipforge.errors import InputError
from clipforge.models.hf import TEXT_POOLING_ATTR, text_features, text_tower_features
from clipforge.models.presets import DEFAULT_WORDS as WORDS, make_dual_encoder
from clipforge.train.config import ModelConfig, build_config, validate
from clipforge.train.models import ContrastiveModel, build_model, lock_towers


def _batch(tokenizer, captions):
    tokens = tokenizer(captions, padding=True, return_tensors="pt")
    return torch.randn(len(captions), 3, 32, 32), {k: v for k, v in tokens.items() if k != "token_type_ids"}


def test_locked_text_tower_is_frozen_cached_and_in_eval_mode():
    model, tokenizer, _ = make_dual_encoder("tiny", seed=0)
    model.config.text_config.hidden_dropout_prob = 0.5
    lock_towers(model, ModelConfig(arch="dual", lock_text=True))
    net = ContrastiveModel(model)
    assert net.frozen == {"text"}
    net.train()
    pixels, text = _batch(tokenizer, ["a red apple", "a dog", "a red apple"])
    image_a, text_a, _, _ = net(pixels, **text)
    assert not model.text_model.training and model.vision_model.training
    assert len(net.text_cache) == 2  # two distinct captions
    assert not text_a.requires_grad and image_a.requires_grad
    torch.testing.assert_close(text_a[0], text_a[2])
    # The same caption in another batch, with other padding, reads the cache.
    pixels, text = _batch(tokenizer, ["a dog", "a small bird in the left corner"])
    _, text_b, _, _ = net(pixels, **text)
    torch.testing.assert_close(text_b[0], text_a[1])
    assert len(net.text_cache) == 3


def test_unlocked_text_tower_trains():
    model, tokenizer, _ = make_dual_encoder("tiny", seed=0)
    net = ContrastiveModel(model)
    assert net.frozen == set()
    pixels, text = _batch(tokenizer, ["a red apple", "a dog"])
    _, text_out, _, _ = net(pixels, **text)
    assert text_out.requires_grad and len(net.text_cache) == 0


@pytest.mark.parametrize("pooling", ["pooler", "mean"])
def test_train_text_projection_keeps_only_the_projection_trainable(pooling):
    model, tokenizer, _ = make_dual_encoder("tiny", seed=0)
    setattr(model.config, TEXT_POOLING_ATTR, pooling)
    model.config.text_config.hidden_dropout_prob = 0.5
    lock_towers(model, ModelConfig(arch="dual", lock_text=True, train_text_projection=True))
    trainable = {name.split(".")[0] for name, p in model.named_parameters() if p.requires_grad}
    assert trainable == {"vision_model", "visual_projection", "text_projection", "logit_scale"}
    assert not any(p.requires_grad for p in model.text_model.parameters())
    net = ContrastiveModel(model)
    assert net.frozen == set() and net.text_projection_only
    net.train()
    pixels, text = _batch(tokenizer, ["a red apple", "a dog", "a red apple"])
    _, text_a, _, _ = net(pixels, **text)
    # The tower runs once per caption, in eval mode; the projection gets gradients.
    assert not model.text_model.training and len(net.text_cache) == 2
    assert text_a.requires_grad
    text_a.sum().backward()
    assert model.text_projection.weight.grad is not None
    assert all(p.grad is None for p in model.text_model.parameters())
    torch.testing.assert_close(text_a[0], text_a[2])
    # Same features as the uncached path: projection of the tower's pooled features.
    with torch.no_grad():
        direct = text_features(model, **text)
    torch.testing.assert_close(text_a.detach(), torch.nn.functional.normalize(direct, dim=-1))


def test_train_text_projection_needs_lock_text():
    model, _, _ = make_dual_encoder("tiny", seed=0)
    with pytest.raises(InputError, match="lock_text"):
        lock_towers(model, ModelConfig(arch="dual", train_text_projection=True))


def test_identity_text_projection_keeps_the_text_towers_own_embeddings():
    built = build_model(ModelConfig(arch="dual", preset="tiny", lock_text=True, text_projection="identity"), 0, WORDS)
    model = built.model.eval()
    width = model.text_model.config.hidden_size
    assert model.config.projection_dim == width
    assert model.visual_projection.weight.shape == (width, model.vision_model.config.hidden_size)
    _, text = _batch(built.tokenizer, ["a red apple", "a dog"])
    with torch.no_grad():
        torch.testing.assert_close(text_features(model, **text), text_tower_features(model, **text))
    assert not model.text_projection.weight.requires_grad


def test_identity_text_projection_is_refused_outside_dual_encoders():
    with pytest.raises(InputError, match="arch dual"):
        validate(build_config({"data.train": "x", "model.arch": "clip", "model.text_projection": "identity"}))
    with pytest.raises(InputError, match="no init"):
        validate(build_config({"data.train": "x", "model.arch": "dual", "model.init": "hf:run/final",
                               "model.text_projection": "identity"}))
    with pytest.raises(InputError, match="not one of"):
        validate(build_config({"data.train": "x", "model.arch": "dual", "model.text_projection": "orthogonal"}))
