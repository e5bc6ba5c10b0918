"""GradCache: gradients equal the whole batch's, alone and under torchrun; bad chunk sizes
are one line."""

from __future__ import annotations

import math
import subprocess
import sys
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import torch

from clipforge.errors import InputError
from clipforge.models.presets import make_clip, make_siglip
from clipforge.train import train
from clipforge.train.data import Batch
from clipforge.train.grad_cache import backward_in_chunks
from clipforge.train.logs import read_log
from clipforge.train.losses import clip_loss, siglip_loss
from clipforge.train.models import ContrastiveModel, lock_tower
from train_helpers import shapes_small, tiny_config  # noqa: F401 (a fixture)
from test_ddp import run_torchrun

N, CHUNK = 12, 4


def _setup(family: str, dropout: float = 0.0, lock_text: bool = False):
    model, _, _ = (make_clip if family == "clip" else make_siglip)("tiny", seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(10.0))
    for layer in [*model.vision_model.encoder.layers, *model.text_model.encoder.layers]:
        layer.self_attn.dropout = dropout  # HF attention reads it at each training forward
    if lock_text:
        lock_tower(model, "text")
    net = ContrastiveModel(model).train()
    torch.manual_seed(3)
    ids = torch.randint(1, model.config.text_config.vocab_size - 2, (N, 9))
    batch = Batch(torch.randn(N, 3, 32, 32), {"input_ids": ids})
    if family == "siglip":
        loss = lambda i, t, s, b: siglip_loss(i, t, s, b)  # noqa: E731
    else:
        loss = lambda i, t, s, b: clip_loss(i, t, s)  # noqa: E731
        model.logit_bias.requires_grad_(False) if getattr(model, "logit_bias", None) is not None else None
    return net, batch, loss


def _grads(net) -> dict[str, torch.Tensor]:
    grads = {n: p.grad.clone() for n, p in net.named_parameters() if p.grad is not None}
    net.zero_grad(set_to_none=True)
    return grads


def _reference(net, batch, loss_fn, chunk: int | None) -> tuple[torch.Tensor, dict]:
    """Gradients of the loss with the whole graph kept: one forward, or chunk by chunk."""
    size = chunk or N
    parts = [net(batch.pixel_values[i : i + size], **{k: v[i : i + size] for k, v in batch.text.items()})
             for i in range(0, N, size)]
    image = torch.cat([p[0] for p in parts])
    text = torch.cat([p[1] for p in parts])
    loss = loss_fn(image, text, parts[-1][2], parts[-1][3])
    loss.backward()
    return loss.detach(), _grads(net)


def _cached(net, batch, loss_fn) -> tuple[torch.Tensor, dict]:
    loss = backward_in_chunks(net, batch, CHUNK, nullcontext, loss_fn, lambda x: x, True, torch.device("cpu"))
    return loss, _grads(net)


def _assert_same(expected: dict, got: dict) -> None:
    assert expected.keys() == got.keys()
    assert len(got) > 10
    for name, grad in expected.items():
        torch.testing.assert_close(got[name], grad, rtol=1e-4, atol=1e-6, msg=name)


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_gradients_equal_the_whole_batch(family):
    net, batch, loss_fn = _setup(family)
    torch.manual_seed(0)
    whole_loss, whole = _reference(net, batch, loss_fn, None)
    loss, cached = _cached(net, batch, loss_fn)
    torch.testing.assert_close(loss, whole_loss)
    _assert_same(whole, cached)
    assert "model.logit_scale" in cached
    assert ("model.logit_bias" in cached) == (family == "siglip")


def test_dropout_masks_are_replayed():
    net, batch, loss_fn = _setup("clip", dropout=0.3)
    torch.manual_seed(5)
    _, expected = _reference(net, batch, loss_fn, CHUNK)  # the same masks, drawn chunk by chunk
    torch.manual_seed(5)
    _, cached = _cached(net, batch, loss_fn)
    _assert_same(expected, cached)
    torch.manual_seed(6)
    _, other = _reference(net, batch, loss_fn, CHUNK)
    assert not torch.allclose(other["model.visual_projection.weight"], expected["model.visual_projection.weight"])


def test_a_locked_text_tower_gets_no_gradient():
    net, batch, loss_fn = _setup("clip", lock_text=True)
    _, whole = _reference(net, batch, loss_fn, None)
    _, cached = _cached(net, batch, loss_fn)
    _assert_same(whole, cached)
    assert not any(name.startswith("model.text") for name in cached)


def test_training_with_grad_cache_follows_the_same_loss_curve(shapes_small, tmp_path):
    plain = train(tiny_config(tmp_path / "plain", shapes_small, workers=2, save_every=0))
    cached = train(tiny_config(tmp_path / "cached", shapes_small, workers=2, save_every=0, grad_cache_chunk=4))
    assert plain.finished and cached.finished
    plain_losses = [r["loss"] for r in read_log(tmp_path / "plain")]
    cached_losses = [r["loss"] for r in read_log(tmp_path / "cached")]
    assert plain_losses[-1] < plain_losses[0]
    np.testing.assert_allclose(cached_losses, plain_losses, rtol=2e-4)


def test_grad_cache_under_torchrun_matches_one_process_with_the_whole_batch(shapes_small, tmp_path):
    losses = run_torchrun(shapes_small, tmp_path / "ddp", "--grad-cache-chunk", "2")
    single = train(tiny_config(tmp_path / "one", shapes_small, batch_size=16, max_steps=4, save_every=2))
    assert single.finished
    np.testing.assert_allclose(losses, [r["loss"] for r in read_log(tmp_path / "one")], rtol=2e-4)


@pytest.mark.parametrize("chunk", ["5", "16", "0"])
def test_a_chunk_that_does_not_divide_the_batch_is_one_line(tmp_path, shapes_small, chunk):
    with pytest.raises(InputError, match="grad_cache_chunk"):
        tiny_config(tmp_path / "x", shapes_small, grad_cache_chunk=int(chunk))
    proc = subprocess.run(
        [sys.executable, "-m", "clipforge", "train", "--train", str(shapes_small), "--out", str(tmp_path / "run"),
         "--batch-size", "16", "--grad-cache-chunk", chunk],
        capture_output=True, text=True, timeout=120,
    )
    assert proc.returncode != 0
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "grad_cache_chunk" in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    assert not (tmp_path / "run").exists()
