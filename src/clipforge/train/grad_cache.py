"""GradCache (Gao et al. 2021): a contrastive batch larger than the towers' activations fit.

The loss needs every feature of the batch, but the gradient of the loss with respect to
the *features* is small (batch x dim). So a micro-batch is processed in three passes:

1. the towers run over chunks without building a graph, keeping only the features;
2. the loss over the whole batch (gathered across ranks as usual) is back-propagated to
   those features, and to the logit scale and bias, and stops there;
3. each chunk is run again with a graph, and its cached feature gradients are pushed
   through the towers: ``backward(features_chunk, grad_chunk)``.

Parameter gradients equal the whole-batch ones (``tests/train/test_grad_cache.py``); peak
activation memory is one chunk's. Each chunk's random state is replayed in pass 3, so a
tower with dropout draws the same masks twice. Under DDP the gradients are reduced once,
with the last chunk's backward; the others run under ``no_sync``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext

import torch

from .data import Batch


def _chunks(batch: Batch, size: int) -> Iterator[tuple[slice, torch.Tensor, dict[str, torch.Tensor]]]:
    for start in range(0, batch.pixel_values.shape[0], size):
        rows = slice(start, start + size)
        yield rows, batch.pixel_values[rows], {k: v[rows] for k, v in batch.text.items()}


def _rng_state(device: torch.device) -> tuple:
    return torch.get_rng_state(), torch.cuda.get_rng_state(device) if device.type == "cuda" else None


@contextmanager
def _replayed(state: tuple, device: torch.device):
    devices = [device] if device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.set_rng_state(state[0])
        if state[1] is not None:
            torch.cuda.set_rng_state(state[1], device)
        yield


def _leaf(tensor: torch.Tensor | None) -> torch.Tensor | None:
    """A float32 copy that collects the loss's gradient and passes none further back."""
    if tensor is None:
        return None
    return tensor.detach().float().requires_grad_(tensor.requires_grad)


def backward_in_chunks(
    net: torch.nn.Module,
    batch: Batch,
    chunk: int,
    autocast: Callable,
    loss_fn: Callable,
    for_backward: Callable[[torch.Tensor], torch.Tensor],
    sync: bool,
    device: torch.device,
) -> torch.Tensor:
    """Back-propagate ``for_backward(loss_fn(...))`` over ``batch`` through ``net`` (a
    ContrastiveModel, maybe in DDP) in chunks of ``chunk`` samples; returns the loss.
    (``for_backward`` is where a GradScaler scales the loss.)

    ``sync``: whether this micro-batch's backward reduces gradients across processes.
    """
    states, images, texts = [], [], []
    with torch.no_grad():
        for _, pixels, text_inputs in _chunks(batch, chunk):
            states.append(_rng_state(device))
            with autocast():
                image, text, scale, bias = net(pixels, **text_inputs)
            images.append(image.float())
            texts.append(text.float())
    image_all = torch.cat(images).requires_grad_()
    text_all = torch.cat(texts).requires_grad_(_text_trains(net))
    scale_leaf, bias_leaf = _leaf(_parameter(net, "logit_scale")), _leaf(_parameter(net, "logit_bias"))
    loss = loss_fn(image_all, text_all, scale_leaf, bias_leaf)
    for_backward(loss).backward()

    pieces = list(_chunks(batch, chunk))
    for i, (rows, pixels, text_inputs) in enumerate(pieces):
        last = i == len(pieces) - 1
        with nullcontext() if (sync and last) or not hasattr(net, "no_sync") else net.no_sync():
            with _replayed(states[i], device), autocast():
                image, text, scale, bias = net(pixels, **text_inputs)
            outputs = [(image, image_all.grad[rows]), (text, text_all.grad[rows] if text_all.grad is not None else None)]
            if last:  # the temperature's gradient, once, through the graph DDP watches
                outputs += [(scale, scale_leaf.grad), (bias, None if bias_leaf is None else bias_leaf.grad)]
            tensors = [(t, g.to(t.dtype)) for t, g in outputs if t is not None and g is not None and t.requires_grad]
            torch.autograd.backward([t for t, _ in tensors], [g for _, g in tensors])
    return loss.detach()


def _inner(net: torch.nn.Module) -> torch.nn.Module:
    return getattr(net, "module", net)  # under DDP, the ContrastiveModel it wraps


def _parameter(net: torch.nn.Module, name: str) -> torch.Tensor | None:
    return getattr(_inner(net).model, name, None)


def _text_trains(net: torch.nn.Module) -> bool:
    return "text" not in _inner(net).frozen
