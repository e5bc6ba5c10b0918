"""Running a benchmark end to end: encode, score, and report in CLIP_benchmark's shape.

```python
from clipforge.eval import evaluate_retrieval, load_retrieval_dataset
from clipforge.models import load_encoder
data = load_retrieval_dataset("coco_karpathy_test.json", images="coco/")
result = evaluate_retrieval(load_encoder("hf:openai/clip-vit-base-patch32"), data)
```
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, NotFoundError
from ..search.classify import build_classifier
from ..models.text_memory import read_through, resolve_text_memory
from .dataset import ClassificationDataset, ImageRef, RetrievalDataset
from .encode import EncodeConfig, encode_images, encode_texts
from .ranking import DEFAULT_BLOCK
from .retrieval import DEFAULT_RECALL_K, retrieval_metrics, retrieval_ranks
from .templates import resolve_templates
from .zeroshot import check_labels, classification_metrics, classification_ranks


@dataclass
class EvalResult:
    """One benchmark result. ``to_dict`` is CLIP_benchmark's JSON (``dataset``, ``model``,
    ``task``, ``metrics``, ``language``) with clipforge's ``details`` beside it."""

    dataset: str
    model: str
    task: str  # "zeroshot_retrieval" or "zeroshot_classification", as CLIP_benchmark names them
    metrics: dict[str, float | None]
    language: str = "en"
    details: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "model": self.model,
            "task": self.task,
            "metrics": self.metrics,
            "language": self.language,
            "details": self.details,
        }


@dataclass
class RetrievalConfig:
    recall_k: tuple[int, ...] = DEFAULT_RECALL_K
    block: int = DEFAULT_BLOCK
    encode: EncodeConfig = field(default_factory=EncodeConfig)


@dataclass
class ZeroShotConfig:
    templates: str | None = None  # a set name or a file; None: the dataset's own, else the default set
    text_memory: str = "auto"  # "auto" (the model's own, if any), "off", or a file: models.text_memory
    block: int = DEFAULT_BLOCK
    encode: EncodeConfig = field(default_factory=EncodeConfig)


def _details(encoder, data, **extra) -> dict[str, Any]:
    return {
        "format": data.format,
        "split": data.split,
        "images": len(data.images),
        **extra,
        "precision": encoder.precision,
        "device": str(encoder.device),
    }


def evaluate_retrieval(
    encoder,
    data: RetrievalDataset,
    config: RetrievalConfig | None = None,
    image_emb: np.ndarray | None = None,
) -> EvalResult:
    """Recall@K both ways. ``image_emb`` skips encoding the images (stored vectors)."""
    config = config or RetrievalConfig()
    text_emb = encode_texts(encoder, data.captions, config.encode)
    if image_emb is None:
        image_emb = encode_images(encoder, data.images, config.encode)
    ranks = retrieval_ranks(text_emb, image_emb, data.caption_image, config.block)
    metrics = retrieval_metrics(ranks, config.recall_k)
    details = _details(encoder, data, captions=len(data.captions))
    return EvalResult(data.name, str(encoder.spec), "zeroshot_retrieval", metrics, details=details)


def evaluate_zeroshot(
    encoder, data: ClassificationDataset, config: ZeroShotConfig | None = None, image_emb: np.ndarray | None = None
) -> EvalResult:
    """acc1, acc5 and mean per-class recall with a prompt-ensemble classifier. ``image_emb``
    skips encoding the images (vectors already made for another evaluation)."""
    config = config or ZeroShotConfig()
    check_labels(data.labels, len(data.classnames))
    template_name, templates = resolve_templates(config.templates, data.templates)
    memory = resolve_text_memory(encoder, config.text_memory)
    classifier = build_classifier(encoder, data.classnames, templates)
    if image_emb is None:
        image_emb = encode_images(encoder, data.images, config.encode)
    scored = read_through(memory, image_emb)
    metrics = classification_metrics(classification_ranks(scored, classifier, data.labels, config.block))
    details = _details(encoder, data, classes=len(data.classnames), templates=template_name, prompts=len(templates),
                       text_memory=memory.describe() if memory is not None else None)
    return EvalResult(data.name, str(encoder.spec), "zeroshot_classification", metrics, details=details)


def stored_image_vectors(collection, images: Sequence[ImageRef]) -> np.ndarray:
    """The collection's vectors for ``images``, in order; every image must be stored.

    Stored vectors are float16 on disk; they are renormalised so scores stay cosines.
    """
    if any(not ref.is_file for ref in images):
        raise InputError("-c needs a dataset of image files; this one keeps its images in tar shards")
    paths = [str(Path(ref.path).resolve()) for ref in images]
    found = collection.vectors_for_paths(paths)
    missing = [p for p in paths if p not in found]
    if missing:
        raise NotFoundError(
            f"{len(missing)} of {len(paths)} images are not in the collection (first: {missing[0]}); "
            f"index them first, or evaluate with --model"
        )
    vectors = np.stack([np.asarray(found[p], dtype=np.float32) for p in paths])
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True).clip(min=1e-12)


def evaluate_retrieval_from_collection(
    collection_name: str,
    data: RetrievalDataset,
    config: RetrievalConfig | None = None,
    model: str | None = None,
    device: str = "auto",
    precision: str = "auto",
) -> EvalResult:
    """Retrieval with the images' stored vectors; only the captions are encoded, with the
    collection's own model (``model``, if given, must be that model)."""
    from ..index.collection import Collection

    # open() refuses a model other than the one the collection was built with.
    with Collection.open(collection_name, model, device=device, precision=precision) as coll:
        image_emb = stored_image_vectors(coll, data.images)
        encoder = coll.encoder
    result = evaluate_retrieval(encoder, data, config, image_emb=image_emb)
    result.details["collection"] = collection_name
    return result
