"""Benchmarks as the field computes them: retrieval Recall@K and zero-shot accuracy.

Metric names and JSON follow CLIP_benchmark, so numbers can be compared with its output.
"""

from .dataset import ClassificationDataset, ImageRef, RetrievalDataset
from .encode import EncodeConfig
from .evaluate import (
    EvalResult,
    RetrievalConfig,
    ZeroShotConfig,
    evaluate_retrieval,
    evaluate_retrieval_from_collection,
    evaluate_zeroshot,
)
from .formats import load_classification_dataset, load_retrieval_dataset
from .retrieval import retrieval_metrics, retrieval_ranks
from .templates import TEMPLATE_SETS
from .zeroshot import classification_metrics, classification_ranks

__all__ = [
    "ClassificationDataset",
    "EncodeConfig",
    "EvalResult",
    "ImageRef",
    "RetrievalConfig",
    "RetrievalDataset",
    "TEMPLATE_SETS",
    "ZeroShotConfig",
    "classification_metrics",
    "classification_ranks",
    "evaluate_retrieval",
    "evaluate_retrieval_from_collection",
    "evaluate_zeroshot",
    "load_classification_dataset",
    "load_retrieval_dataset",
    "retrieval_metrics",
    "retrieval_ranks",
]
