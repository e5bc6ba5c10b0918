"""A dual encoder's image tower may be a ConvNeXt built from scratch: it trains, saves, loads
for inference with the same features, locks by stages, and is refused where it cannot apply."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipforge.errors import InputError
from clipforge.models import load_encoder
from clipforge.train import train
from clipforge.train.config import ModelConfig, build_config, validate
from clipforge.train.models import build_model, lock_tower
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)


def test_a_convnext_dual_encoder_is_built_from_its_own_seed():
    a = build_model(ModelConfig(arch="dual", preset="tiny", vision_arch="convnext"), seed=3, words=[])
    b = build_model(ModelConfig(arch="dual", preset="tiny", vision_arch="convnext"), seed=3, words=[])
    c = build_model(ModelConfig(arch="dual", preset="tiny", vision_arch="convnext"), seed=4, words=[])
    assert type(a.model.vision_model).__name__ == "ConvNextModel"
    assert a.model.visual_projection.in_features == a.model.vision_model.config.hidden_sizes[-1]
    for (name, x), y in zip(a.model.state_dict().items(), b.model.state_dict().values()):
        assert torch.equal(x, y), name
    assert not torch.equal(a.model.vision_model.embeddings.patch_embeddings.weight,
                           c.model.vision_model.embeddings.patch_embeddings.weight)


def test_a_convnext_tower_trains_and_loads_with_its_trained_weights(shapes_small, tmp_path):
    from safetensors.torch import load_file

    out = tmp_path / "run"
    result = train(tiny_config(out, shapes_small, val="", arch="dual", vision_arch="convnext"))
    assert result.finished and result.checkpoint == out / "final"
    encoder = load_encoder(f"hf:{out}/final", device="cpu", precision="fp32")
    vectors = encoder.encode_images(sorted((shapes_small / "images").glob("*.png"))[:3])
    assert vectors.shape == (3, 16) and np.allclose(np.linalg.norm(vectors, axis=1), 1, atol=1e-5)
    # Inference holds the saved tower, not a fresh one, and training moved it from its start.
    saved = load_file(out / "final" / "model.safetensors")
    loaded = encoder.model.state_dict()
    start = build_model(ModelConfig(arch="dual", preset="tiny", vision_arch="convnext"), seed=0, words=[]).model.state_dict()
    vision_keys = [k for k in saved if k.startswith("vision_model.")]
    assert len(vision_keys) == len([k for k in loaded if k.startswith("vision_model.")])
    assert all(torch.equal(saved[k], loaded[k]) for k in vision_keys)
    assert not all(torch.equal(saved[k], start[k]) for k in vision_keys)


def test_locking_a_convnext_tower_opens_only_its_last_stages():
    model = build_model(ModelConfig(arch="dual", preset="tiny", vision_arch="convnext"), seed=0, words=[]).model
    lock_tower(model, "image", unlocked_layers=1)  # tiny has 3 stages
    opened = {n for n, p in model.named_parameters() if p.requires_grad and n.startswith(("vision_model.", "visual_"))}
    assert opened and all(n.startswith(("vision_model.encoder.stages.2.", "vision_model.layernorm.", "visual_projection."))
                          for n in opened)
    assert "visual_projection.weight" in opened


@pytest.mark.parametrize("values", [
    {"arch": "clip", "vision_arch": "convnext"},
    {"arch": "dual", "vision_arch": "convnext", "vision_tower": "some/dir"},
    {"arch": "dual", "vision_arch": "convnext", "init": "hf:some/dir"},
    {"arch": "dual", "vision_arch": "resnet"},
])
def test_vision_arch_is_refused_where_it_cannot_apply(values):
    with pytest.raises(InputError, match="vision_arch"):
        validate(build_config({"train": "data", **values}))
