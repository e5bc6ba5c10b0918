"""Contrastive losses: CLIP's InfoNCE and SigLIP's sigmoid loss, local or distributed.

Under torch.distributed each rank holds a local batch of B image and text features. The
features of all ranks are gathered *with* gradients, and each rank scores only its own B
rows against all N = world x B columns (open_clip's ``local_loss=True`` with
``gather_with_grad=True``). The loss on a rank is the mean over its rows; DDP then averages
gradients over ranks, and the gradient that flows back through the gather sums every rank's
use of a feature. Together that equals, exactly, one process computing the loss over the
whole N-sample batch: ``tests/train/test_losses.py`` checks it with real processes.
The cost per rank is a B x N logit matrix instead of N x N.
"""

from __future__ import annotations

import math

import torch
import torch.distributed as dist
import torch.nn.functional as F

from ..models.init import CLIP_LOGIT_SCALE_INIT  # noqa: F401  (the loss's starting temperature)
MAX_LOGIT_SCALE = math.log(100.0)  # the temperature may not sharpen logits past x100


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def gather_with_grad(features: torch.Tensor) -> torch.Tensor:
    """All ranks' features, concatenated in rank order, differentiable w.r.t. this rank's."""
    if not _distributed():
        return features
    import warnings

    import torch.distributed.nn.functional as dist_fn

    with warnings.catch_warnings():
        # Deprecated in favour of a private module; the public one still works.
        warnings.simplefilter("ignore", FutureWarning)
        return torch.cat(dist_fn.all_gather(features), dim=0)


def _offset() -> int:
    return dist.get_rank() if _distributed() else 0


def clip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Symmetric cross-entropy over image->text and text->image similarities.

    Features are L2-normalised; ``logit_scale`` is the log of the inverse temperature.
    """
    all_images, all_texts = gather_with_grad(image_features), gather_with_grad(text_features)
    scale = logit_scale.exp()
    logits_per_image = scale * image_features @ all_texts.T
    logits_per_text = scale * text_features @ all_images.T
    local = image_features.shape[0]
    labels = torch.arange(local, device=image_features.device) + _offset() * local
    # Compute in float32: under autocast the logits are bf16/fp16, too coarse for softmax sums.
    return 0.5 * (
        F.cross_entropy(logits_per_image.float(), labels, label_smoothing=label_smoothing)
        + F.cross_entropy(logits_per_text.float(), labels, label_smoothing=label_smoothing)
    )


def siglip_loss(
    image_features: torch.Tensor,
    text_features: torch.Tensor,
    logit_scale: torch.Tensor,
    logit_bias: torch.Tensor,
) -> torch.Tensor:
    """Pairwise sigmoid loss: each image-text pair is its own binary problem.

    Normalised, as in the paper and open_clip, by the number of local images. (open_clip
    passes text features around a ring of ranks; gathering them gives the same sum.)
    """
    all_texts = gather_with_grad(text_features)
    logits = (logit_scale.exp() * image_features @ all_texts.T + logit_bias).float()
    local = image_features.shape[0]
    labels = -torch.ones_like(logits)
    rows = torch.arange(local, device=logits.device)
    labels[rows, rows + _offset() * local] = 1.0
    return -F.logsigmoid(labels * logits).sum() / local


def normalize(features: torch.Tensor) -> torch.Tensor:
    return features / features.norm(dim=-1, keepdim=True).clamp_min(1e-12)
