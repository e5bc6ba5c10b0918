"""Validation during training: image-text retrieval Recall@K on held-out pairs.

Images are decoded once, with the eval-time preprocessing, and kept as uint8 arrays; each
validation pass embeds them and every caption through the same ``Encoder`` code that
``clipforge eval`` and indexing use, and scores them with ``clipforge.eval.retrieval``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..data.images import decode_bytes
from ..data.pairs import PairSet
from ..errors import ImageDecodeError, InputError
from ..models.hf import Encoder, max_text_length_of
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
    for pair in pairs.pairs[:max_images]:
        try:
            image = decode_bytes(pair.image.read(), draft_size=preprocess.draft_size)
        except ImageDecodeError as e:
            log.warning("validation: skipped %s: %s", pair.image.name, e.reason)
            skipped += 1
            continue
        arrays.append(preprocess.resize_crop(image))
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
            # Normalised float32 is 4x the uint8 cache: convert a chunk at a time.
            image_emb = np.concatenate([
                encoder.encode_pixels(encoder.preprocess.normalize(val.pixels[i : i + 256]))
                for i in range(0, len(val.pixels), 256)
            ])
    finally:
        model.train(was_training)
    ranks = retrieval_ranks(text_emb, image_emb, val.caption_image)
    metrics = retrieval_metrics(ranks, recall_k)
    return {k: v for k, v in metrics.items() if "recall@" in k or k.endswith("median_rank")}
