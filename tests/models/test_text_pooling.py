"""Mean-pooled text features: a dual encoder whose config says
``clipforge_text_pooling: mean`` projects the masked mean of its token states."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from clipforge.errors import ModelLoadError
from clipforge.models import load_encoder

TEXTS = ["a dog", "a small red apple on a table", "green"]


def _with_pooling(src, dst, pooling):
    shutil.copytree(src, dst)
    config = json.loads((dst / "config.json").read_text())
    config["clipforge_text_pooling"] = pooling
    (dst / "config.json").write_text(json.dumps(config))
    return dst


def test_mean_pooling_projects_the_masked_mean(tiny_dual_dir, tmp_path):
    encoder = load_encoder(f"hf:{_with_pooling(tiny_dual_dir, tmp_path / 'mean', 'mean')}", "cpu", "fp32")
    got = encoder.encode_texts(TEXTS)
    model, tokens = encoder.model, encoder.tokenizer(TEXTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = model.text_model(**tokens).last_hidden_state
        mask = tokens["attention_mask"].unsqueeze(-1).float()
        want = model.text_projection((states * mask).sum(1) / mask.sum(1))
    want = torch.nn.functional.normalize(want, dim=-1).numpy()
    np.testing.assert_allclose(got, want, atol=1e-5)
    # Padding does not change a text's vector: alone or beside a longer text, the same.
    np.testing.assert_allclose(encoder.encode_texts(TEXTS[:1]), got[:1], atol=1e-5)
    pooled = load_encoder(f"hf:{tiny_dual_dir}", "cpu", "fp32").encode_texts(TEXTS)
    assert not np.allclose(pooled, got, atol=1e-3)


def test_unknown_pooling_is_refused(tiny_dual_dir, tmp_path):
    with pytest.raises(ModelLoadError, match="clipforge_text_pooling"):
        load_encoder(f"hf:{_with_pooling(tiny_dual_dir, tmp_path / 'max', 'max')}", "cpu", "fp32")
