"""AdamW with decay only where it belongs, and a cosine schedule with linear warm-up."""

from __future__ import annotations

import math

import torch
from torch import nn

from .config import OptimConfig


def _decays(name: str, param: nn.Parameter) -> bool:
    # Biases, norm gains, embeddings' 1-d class tokens and the logit scale/bias are not
    # weights to shrink: decaying the logit scale would pull the temperature back up.
    return param.ndim >= 2 and "logit_" not in name


def param_groups(model: nn.Module, weight_decay: float) -> list[dict]:
    trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    return [
        {"params": [p for n, p in trainable if _decays(n, p)], "weight_decay": weight_decay},
        {"params": [p for n, p in trainable if not _decays(n, p)], "weight_decay": 0.0},
    ]


def build_optimizer(model: nn.Module, config: OptimConfig, device: torch.device) -> torch.optim.AdamW:
    return torch.optim.AdamW(
        param_groups(model, config.weight_decay),
        lr=config.lr,
        betas=(config.beta1, config.beta2),
        eps=config.eps,
        # One pass over each parameter's state instead of a kernel per operation: on a CPU
        # the step of a ViT-B/32 goes from about 0.5 s to 0.08 s.
        fused=device.type in ("cuda", "cpu"),
    )


def cosine_factor(step: int, warmup: int, total: int, min_ratio: float = 0.0) -> float:
    """The multiple of the peak learning rate at ``step`` (0-based)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    progress = (step - warmup) / max(1, total - warmup)
    return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))


def build_scheduler(optimizer: torch.optim.Optimizer, config: OptimConfig, total_steps: int):
    warmup = min(config.warmup_steps, max(0, total_steps - 1))
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: cosine_factor(step, warmup, total_steps, config.min_lr_ratio)
    )
