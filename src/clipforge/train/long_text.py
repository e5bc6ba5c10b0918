"""Long-CLIP (Zhang et al. 2024): a CLIP text tower that reads past its 77 tokens.

Two pieces:

- ``stretch_positions``: the learned position embeddings grow from L to N by
  knowledge-preserving interpolation. The first ``KEEP`` positions, which CLIP trained well
  (captions are mostly short), stay as they are; the rest are spread over the new length and
  filled in linearly between neighbours (the last ones extrapolate from the last two). For
  L = 77 and N = 248 that is exactly the paper's 4x interpolation of positions 20..76.
- ``long_text_loss``: the usual loss between images and their long captions, plus the same
  loss between the images' *principal components* (the batch's features projected onto
  their top principal directions, which keep the coarse content) and short captions, so
  that short queries keep working while the tower learns long ones.

Each training image needs a long and a short caption: its longest and its shortest caption
when it has several, else its caption and that caption's first sentence.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import torch
from torch import nn

from ..errors import InputError
from .losses import normalize

KEEP = 20  # positions kept as trained
MAX_SHARE_OF_MEMORY = 0.5  # the attention maps of one step may use at most this much memory


def _position_embedding(model: nn.Module) -> nn.Embedding:
    text = getattr(model, "text_model", None)
    embeddings = getattr(text, "embeddings", None)
    table = getattr(embeddings, "position_embedding", None)
    if not isinstance(table, nn.Embedding):
        raise InputError(
            f"--long-text stretches learned position embeddings, and this model's text tower "
            f"({type(text).__name__}) has none to stretch"
        )
    return table


def stretched(old: torch.Tensor, length: int, keep: int = KEEP) -> torch.Tensor:
    """Position embeddings ``old`` (L x width) stretched to ``length`` rows."""
    positions = old.shape[0]
    ratio = (length - keep) / (positions - keep)
    new = torch.empty(length, old.shape[1], dtype=old.dtype)
    new[:keep] = old[:keep]
    source = keep + (torch.arange(keep, length, dtype=torch.float64) - keep) / ratio  # where each new row reads
    low = source.floor().long().clamp(max=positions - 2)  # past the end: extend the last step
    weight = (source - low).to(old.dtype).unsqueeze(1)
    new[keep:] = old[low] * (1 - weight) + old[low + 1] * weight
    return new


def stretch_positions(model: nn.Module, tokenizer, length: int, batch_size: int) -> int:
    """Grow the text tower of ``model`` (and ``tokenizer``) to ``length`` tokens; returns the
    old length."""
    table = _position_embedding(model)
    positions, width = table.weight.shape
    if length <= positions:
        raise InputError(f"--long-text {length} must be longer than the text tower's {positions} positions")
    if positions <= KEEP + 1:
        raise InputError(f"--long-text needs a text tower of more than {KEEP + 1} positions, this one has {positions}")
    _check_memory(model, length, batch_size)
    grown = nn.Embedding(length, width, dtype=table.weight.dtype, device=table.weight.device)
    with torch.no_grad():
        grown.weight.copy_(stretched(table.weight.detach().cpu(), length).to(table.weight.device))
    embeddings = model.text_model.embeddings
    embeddings.position_embedding = grown
    embeddings.position_ids = torch.arange(length, device=table.weight.device).expand((1, -1))
    for config in (model.config.text_config, model.text_model.config):
        config.max_position_embeddings = length
    tokenizer.model_max_length = length
    return positions


def _check_memory(model: nn.Module, length: int, batch_size: int) -> None:
    config = model.config.text_config
    # Attention maps kept for backward: a long and a short caption per sample, per layer and head.
    need = 2 * batch_size * config.num_hidden_layers * config.num_attention_heads * length * length * 4
    have = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    if torch.cuda.is_available():
        have = torch.cuda.get_device_properties(0).total_memory
    if need > MAX_SHARE_OF_MEMORY * have:
        raise InputError(
            f"--long-text {length} at batch size {batch_size} needs about {need / 2**30:.0f} GB for attention "
            f"maps alone, more than this machine allows ({have / 2**30:.0f} GB): use a shorter length or batch"
        )


_SENTENCE_END = re.compile(r"(?<=[.!?;])\s+")


def first_sentence(text: str) -> str:
    return _SENTENCE_END.split(text.strip(), maxsplit=1)[0]


def long_and_short(captions: tuple[str, ...]) -> tuple[str, str]:
    """A training image's long and short captions."""
    longest = max(captions, key=len)
    if len(captions) > 1:
        return longest, min(captions, key=len)
    return longest, first_sentence(longest)


def principal_components(features: torch.Tensor, components: int) -> torch.Tensor:
    """``features`` projected onto the batch's top principal directions, normalised.

    The directions are found without gradient (an eigendecomposition's gradient is unstable
    for close eigenvalues); the projection itself carries gradients back to the features.
    """
    mean = features.mean(dim=0, keepdim=True)
    centred = features - mean
    with torch.no_grad():
        _, vectors = torch.linalg.eigh(centred.T.float() @ centred.float())
        basis = vectors[:, -components:].to(features.dtype)  # eigh sorts ascending
    return normalize(centred @ basis @ basis.T + mean)


def long_text_loss(loss_fn: Callable, components: int) -> Callable:
    """The Long-CLIP loss around ``loss_fn``: text features are the batch's long captions
    followed by its short captions."""

    def loss(image, text, scale, bias):
        n = image.shape[0]
        if text.shape[0] != 2 * n:
            raise ValueError(f"expected {2 * n} text features (long, then short), got {text.shape[0]}")
        long_loss = loss_fn(image, text[:n], scale, bias)
        return long_loss + loss_fn(principal_components(image, components), text[n:], scale, bias)

    return loss
