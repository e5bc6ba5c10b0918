"""Validation during training: image-text retrieval Recall@K on held-out pairs.

Images are decoded once, by the image pipeline with the eval-time preprocessing, and kept
as uint8 arrays; each validation pass embeds them and every caption through the same
``Encoder`` code that ``clipforge eval`` and indexing use, and scores them with
``clipforge.eval.retrieval``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..data.pairs import PairSet
from ..errors import InputError
from ..models.hf import Encoder, max_text_length_of
from ..models.pipeline import decode_images
from ..models.preprocess import ImagePreprocess
from ..models.spec import ModelSpec
from .models import TrainModel

log = logging.getLogger(__name__)


@dataclass
class ValData:
    pixels: np.ndarray  # uint8 NHWC at the model's input size
    captions: list[str]
    caption_image: np.ndarray  # caption i describes image caption_image[i]
    skipped: int = 0


def load_val_data(pairs: PairSet, preprocess: ImagePreprocess, max_images: int) -> ValData:
    arrays, captions, owners, skipped = [], [], [], 0
    chosen = pairs.pairs[:max_images]
    for pair, decoded in zip(chosen, decode_images([pair.image for pair in chosen], preprocess)):
        if decoded.error:
            log.warning("validation: skipped %s: %s", pair.image.name, decoded.error)
            skipped += 1
            continue
        arrays.append(decoded.pixels)
        captions.extend(pair.captions)
        owners.extend([len(arrays) - 1] * len(pair.captions))
    if len(arrays) < 2:
        raise InputError(f"{pairs.source}: fewer than 2 readable validation images")
    return ValData(np.stack(arrays), captions, np.asarray(owners), skipped)


def encoder_for(parts: TrainModel, device: torch.device) -> Encoder:
    """The model being trained, wrapped in the encoder API inference uses."""
    preprocess = ImagePreprocess.from_hf(parts.image_processor)
    return Encoder(
        spec=ModelSpec("hf", "<training>"),
        family=parts.family,
        model=parts.model,
        tokenizer=parts.tokenizer,
        preprocess=preprocess,
        device=device,
        dtype=torch.float32,  # the weights' dtype; autocast, if any, lowers the matmuls
        max_text_length=max_text_length_of(parts.model, parts.tokenizer),
    )


def recall_at_k(
    encoder: Encoder,
    val: ValData,
    recall_k: Sequence[int] = (1, 5, 10),
    autocast: AbstractContextManager | None = None,
) -> dict[str, float]:
    """Text-to-image and image-to-text Recall@K (CLIP_benchmark's metric names)."""
    from ..eval.retrieval import retrieval_metrics, retrieval_ranks

    model = encoder.model
    was_training = model.training
    model.eval()
    try:
        with autocast or nullcontext():
            text_emb = encoder.encode_texts(val.captions)
            image_emb = encoder.encode_decoded(val.pixels)
    finally:
        model.train(was_training)
    ranks = retrieval_ranks(text_emb, image_emb, val.caption_image)
    metrics = retrieval_metrics(ranks, recall_k)
    return {k: v for k, v in metrics.items() if "recall@" in k or k.endswith("median_rank")}
