"""The losses: equal to the Hugging Face models' own losses, and the same on 2 processes x B
as on 1 process x 2B (real processes, gloo)."""

from __future__ import annotations

import math

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
import torch.nn.functional as F
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from clipforge.models.presets import make_clip, make_siglip
from clipforge.train.losses import CLIP_LOGIT_SCALE_INIT, clip_loss, normalize, siglip_loss

B, DIM = 4, 8
KINDS = ("clip", "siglip")


def _inputs(model):
    torch.manual_seed(1)
    n, vocab = 2 * B, model.config.text_config.vocab_size
    return torch.randn(n, 3, 32, 32), torch.randint(1, vocab - 2, (n, 7))


@pytest.mark.parametrize("family", ["clip", "siglip"])
def test_losses_equal_the_hf_models_own(family):
    model, _, _ = (make_clip if family == "clip" else make_siglip)("tiny", seed=0)
    with torch.no_grad():
        model.logit_scale.fill_(math.log(12.0))
        if family == "siglip":
            model.logit_bias.fill_(-3.0)
    pixels, ids = _inputs(model)
    out = model(input_ids=ids, pixel_values=pixels, return_loss=True)
    ours = (clip_loss if family == "clip" else lambda i, t, s: siglip_loss(i, t, s, model.logit_bias))(
        out.image_embeds, out.text_embeds, model.logit_scale
    )
    assert torch.allclose(ours, out.loss, rtol=1e-5), (float(ours), float(out.loss))


def test_clip_loss_label_smoothing_and_temperature():
    torch.manual_seed(0)
    image, text = normalize(torch.randn(6, DIM)), normalize(torch.randn(6, DIM))
    scale = torch.tensor(CLIP_LOGIT_SCALE_INIT)
    plain, smooth = clip_loss(image, text, scale), clip_loss(image, text, scale, label_smoothing=0.1)
    logits = math.exp(CLIP_LOGIT_SCALE_INIT) * image @ text.T
    labels = torch.arange(6)
    expected = (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2
    assert torch.allclose(plain, expected) and not torch.allclose(plain, smooth)
    assert abs(math.exp(CLIP_LOGIT_SCALE_INIT) - 1 / 0.07) < 1e-9


class Towers(nn.Module):
    """Two small linear towers with CLIP's and SigLIP's logit parameters."""

    def __init__(self, kind: str):
        super().__init__()
        torch.manual_seed(0)
        self.image, self.text = nn.Linear(12, DIM), nn.Linear(10, DIM)
        self.logit_scale = nn.Parameter(torch.tensor(math.log(10.0)))
        # A parameter without a gradient would stall DDP's reduction; CLIP has no bias.
        self.logit_bias = nn.Parameter(torch.tensor(-10.0), requires_grad=kind == "siglip")

    def forward(self, x_image, x_text):
        return normalize(self.image(x_image)), normalize(self.text(x_text)), self.logit_scale, self.logit_bias


def _data():
    g = torch.Generator().manual_seed(3)
    return torch.randn(2 * B, 12, generator=g), torch.randn(2 * B, 10, generator=g)


def _loss(kind, image, text, scale, bias):
    return clip_loss(image, text, scale, 0.0) if kind == "clip" else siglip_loss(image, text, scale, bias)


def _worker(rank, world, init_file, out_file):
    dist.init_process_group("gloo", init_method=f"file://{init_file}", rank=rank, world_size=world)
    results = {}
    try:
        for kind in KINDS:
            model = Towers(kind)
            net = DistributedDataParallel(model)
            x_image, x_text = _data()
            rows = slice(rank * B, (rank + 1) * B)
            loss = _loss(kind, *net(x_image[rows], x_text[rows]))
            loss.backward()
            mean = loss.detach().clone()
            dist.all_reduce(mean)
            results[kind] = {"loss": mean / world, "grads": {n: p.grad for n, p in model.named_parameters()}}
        if rank == 0:
            torch.save(results, out_file)
        # Both ranks leave together: a rank that tears gloo down while its peer still
        # works aborts the peer ("terminate called without an active exception").
        dist.barrier()
    finally:
        dist.destroy_process_group()


def test_two_processes_equal_one_process_with_the_whole_batch(tmp_path):
    mp.spawn(_worker, args=(2, str(tmp_path / "init"), str(tmp_path / "out.pt")), nprocs=2)
    results = torch.load(tmp_path / "out.pt")
    for kind in KINDS:
        model = Towers(kind)
        loss = _loss(kind, *model(*_data()))
        loss.backward()
        distributed = results[kind]
        assert torch.allclose(distributed["loss"], loss, rtol=1e-6), (kind, distributed["loss"], loss)
        for name, param in model.named_parameters():
            if param.requires_grad:
                assert torch.allclose(distributed["grads"][name], param.grad, rtol=1e-5, atol=1e-7), (kind, name)
