"""Models built from scratch start as the CLIP paper's code and open_clip start them
(``models.init``): the parameter statistics of fresh models, per part."""

from __future__ import annotations

import math

import pytest
import torch

from clipforge.models.init import SIGLIP_LOGIT_BIAS_INIT, SIGLIP_LOGIT_SCALE_INIT
from clipforge.models.presets import make_clip, make_dual_encoder, make_siglip, make_vision_tower


def _std(t: torch.Tensor) -> float:
    return float(t.detach().float().std())


def _close(value: float, expected: float, rel: float = 0.06) -> bool:
    return abs(value - expected) <= rel * expected


@pytest.fixture(scope="module")
def clip():
    return make_clip("small", seed=0)[0]


def test_text_transformer_follows_clip(clip):
    text, width, layers = clip.text_model, 256, 6
    assert _close(_std(text.embeddings.token_embedding.weight), 0.02)
    assert _close(_std(text.embeddings.position_embedding.weight), 0.01, rel=0.1)
    for layer in text.encoder.layers:
        attention = layer.self_attn
        for linear in (attention.q_proj, attention.k_proj, attention.v_proj):
            assert _close(_std(linear.weight), width**-0.5) and not linear.bias.any()
        # The outputs shrink with depth, the inputs do not: the reverse of Hugging Face's default.
        assert _close(_std(attention.out_proj.weight), width**-0.5 * (2 * layers) ** -0.5)
        assert _close(_std(layer.mlp.fc1.weight), (2 * width) ** -0.5)
        assert _close(_std(layer.mlp.fc2.weight), width**-0.5 * (2 * layers) ** -0.5)
        assert torch.equal(layer.layer_norm1.weight, torch.ones(width))


def test_vision_transformer_follows_clip(clip):
    vision, width = clip.vision_model, 256
    assert _close(_std(vision.embeddings.class_embedding), width**-0.5, rel=0.15)  # 256 numbers
    assert _close(_std(vision.embeddings.position_embedding.weight), width**-0.5)
    bound = math.sqrt(6 / (4 * width))  # nn.MultiheadAttention's xavier-uniform in-projection
    for layer in vision.encoder.layers:
        q = layer.self_attn.q_proj.weight
        assert float(q.abs().max()) <= bound and _close(_std(q), bound / math.sqrt(3))
        assert not layer.self_attn.out_proj.bias.any()


def test_projections_and_temperatures(clip):
    assert _close(_std(clip.text_projection.weight), 256**-0.5)
    assert _close(_std(clip.visual_projection.weight), 256**-0.5)
    assert math.isclose(float(clip.logit_scale.exp()), 1 / 0.07, rel_tol=1e-6)
    siglip = make_siglip("tiny")[0]
    assert float(siglip.logit_scale) == pytest.approx(SIGLIP_LOGIT_SCALE_INIT)
    assert float(siglip.logit_bias) == SIGLIP_LOGIT_BIAS_INIT


def test_convnext_towers_follow_timm():
    tower = make_vision_tower("small", "convnext", seed=0)
    convs = [m for m in tower.modules() if isinstance(m, torch.nn.Conv2d)]
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert _close(_std(weights), 0.02, rel=0.02)
    assert all(c.bias is None or not c.bias.any() for c in convs)
    linears = [m for m in tower.modules() if isinstance(m, torch.nn.Linear)]
    assert linears and all(not m.bias.any() and _close(_std(m.weight), 0.02, rel=0.1) for m in linears)


def test_a_pretrained_tower_is_left_as_it_was():
    from transformers import BertConfig, BertModel

    text = BertModel(BertConfig(vocab_size=64, hidden_size=32, num_hidden_layers=1, num_attention_heads=2,
                                intermediate_size=64))
    before = {k: v.clone() for k, v in text.state_dict().items()}
    model = make_dual_encoder("tiny", text=text)[0]
    after = model.text_model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    assert _close(_std(model.visual_projection.weight), 32**-0.5, rel=0.15)
