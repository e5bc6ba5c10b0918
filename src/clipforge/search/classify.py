"""Zero-shot classification with prompt ensembles (the CLIP recipe).

Each label's class vector is the mean of its L2-normalised template embeddings,
renormalised. An image is scored against every class vector by cosine similarity; the
probabilities follow the checkpoint's own head: a softmax over labels for CLIP-style models,
an independent sigmoid per label for SigLIP.

A model that ships a text memory (``models.text_memory``) has its image vectors read
through it first, unless the caller turns it off.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import InputError, NotFoundError

# A small, strong default set: the 7 templates that the CLIP authors selected from their 80
# ImageNet prompts as the best ensemble (CLIP repository, "Prompt_Engineering_for_ImageNet").
DEFAULT_TEMPLATES = (
    "itap of a {}.",
    "a bad photo of the {}.",
    "a origami {}.",
    "a photo of the large {}.",
    "a {} in a video game.",
    "art of the {}.",
    "a photo of the small {}.",
)


def check_templates(templates: Sequence[str]) -> list[str]:
    templates = [t for t in templates]
    if not templates:
        raise InputError("no prompt templates given")
    for template in templates:
        if template.count("{}") != 1:
            raise InputError(f"template {template!r} must contain exactly one '{{}}' slot for the label")
    return templates


def load_templates(path: str | Path) -> list[str]:
    """One template per line; blank lines and lines starting with '#' are ignored."""
    try:
        lines = Path(path).read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        raise NotFoundError(f"templates file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"cannot read templates file {path}: {e}") from None
    return check_templates([ln.strip() for ln in lines if ln.strip() and not ln.lstrip().startswith("#")])


def check_labels(labels: Sequence[str]) -> list[str]:
    labels = [str(label).strip() for label in labels]
    if not labels or any(not label for label in labels):
        raise InputError("labels must be a non-empty list of non-empty names")
    if len(set(labels)) != len(labels):
        raise InputError("labels must be unique")
    return labels


def build_classifier(encoder, labels: Sequence[str], templates: Sequence[str] = DEFAULT_TEMPLATES) -> np.ndarray:
    """Class vectors, shape (len(labels), dim), each the renormalised mean of its prompts."""
    labels = check_labels(labels)
    templates = check_templates(templates)
    # replace, not format: any other brace in a template is text, not a field to fill.
    prompts = [template.replace("{}", label) for label in labels for template in templates]
    embeddings = encoder.encode_texts(prompts).reshape(len(labels), len(templates), -1)
    means = embeddings.mean(axis=1)
    return (means / np.linalg.norm(means, axis=1, keepdims=True).clip(min=1e-12)).astype(np.float32)


def class_probabilities(similarities: np.ndarray, logit_scale: float, logit_bias: float | None) -> np.ndarray:
    logits = similarities * logit_scale
    if logit_bias is not None:  # SigLIP: each label is an independent yes/no
        return 1.0 / (1.0 + np.exp(-(logits + logit_bias)))
    logits = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(logits)
    return exp / exp.sum(axis=-1, keepdims=True)


@dataclass
class Prediction:
    label: str
    score: float  # cosine similarity
    probability: float


def classify(
    encoder,
    images: Sequence,
    labels: Sequence[str],
    templates: Sequence[str] = DEFAULT_TEMPLATES,
    text_memory="auto",
) -> list[list[Prediction]]:
    """For each image (a path or PIL image), every label ranked from most to least likely.
    ``text_memory``: "auto" (the model's own, if it ships one), "off", a file, or a
    ``TextMemory``."""
    from ..models.text_memory import read_through, resolve_text_memory

    labels = check_labels(labels)
    memory = resolve_text_memory(encoder, text_memory)
    classifier = build_classifier(encoder, labels, templates)
    similarities = read_through(memory, encoder.encode_images(images)) @ classifier.T
    probabilities = class_probabilities(similarities, encoder.logit_scale, encoder.logit_bias)
    results = []
    for sims, probs in zip(similarities, probabilities):
        order = np.argsort(-probs, kind="stable")
        results.append([Prediction(labels[i], float(sims[i]), float(probs[i])) for i in order])
    return results
