"""The demo model's quality bar, measured on the emoji and clip-art datasets that
``clipforge data emoji`` and ``clipforge data clipart`` build.

- ``emoji_names``: text to image over every emoji image (all splits), one query per image:
  its English CLDR name. Skin-tone and gender variants have their own names, so R@1 needs
  the right variant, not just the right emoji.
- ``clipart_test``: text to image over the clip-art test split, every caption a query.
- ``emoji_groups``: zero-shot classification of the emoji test split into Unicode groups,
  as the model classifies: through its text memory (``models.text_memory``), if it ships one.
- ``emoji_groups_prompts_only``: the same with the plain prompt classifier, as CLIP_benchmark
  computes zero-shot accuracy. No bar; reported beside the other.

A constant guess of the largest group (People & Body) scores about 0.5 acc@1 on the test
split; mean per-class recall is the figure that a guess cannot inflate.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from ..eval.dataset import ClassificationDataset, ImageRef, RetrievalDataset
from ..eval.encode import encode_images
from ..eval.evaluate import EvalResult, ZeroShotConfig, evaluate_retrieval, evaluate_zeroshot
from ..eval.formats import load_retrieval_dataset

# Group names as prompts: "an emoji of food & drink." reads better to a sentence encoder than
# any photo template.
EMOJI_GROUP_TEMPLATES = ("an emoji of {}.", "a {} emoji.", "{}")
# CLIP_benchmark names text-to-image retrieval "image_retrieval" (images are retrieved).
BAR = {
    "emoji_names": {"image_retrieval_recall@1": 0.5, "image_retrieval_recall@5": 0.8},
    "clipart_test": {"image_retrieval_recall@5": 0.3},
    "emoji_groups": {"acc1": 0.6},
}


def _rows(dataset: Path):
    with open(dataset / "pairs.csv", encoding="utf-8", newline="") as f:
        yield from csv.DictReader(f)


def emoji_names_dataset(emoji_dir: str | Path) -> RetrievalDataset:
    """Every emoji image with its English name as the one caption."""
    emoji_dir = Path(emoji_dir)
    images, captions = [], []
    for row in _rows(emoji_dir):
        if row.get("lang", "en") == "en" and row.get("kind") == "name":
            images.append(ImageRef(str(emoji_dir / row["image"])))
            captions.append(row["caption"])
    return RetrievalDataset("emoji-names", "pairs", None, images, captions, np.arange(len(images)))


def emoji_groups_dataset(emoji_dir: str | Path, split: str = "test") -> ClassificationDataset:
    """The emoji images of one split, labelled by Unicode group (lower-cased as a prompt)."""
    emoji_dir = Path(emoji_dir)
    labels: dict[str, str] = {}
    for row in _rows(emoji_dir):
        if row["split"] == split:
            labels.setdefault(row["image"], row["label"])
    classnames = sorted(set(labels.values()))
    index = {name: i for i, name in enumerate(classnames)}
    return ClassificationDataset(
        "emoji-groups", "pairs", split,
        [ImageRef(str(emoji_dir / image)) for image in labels],
        np.asarray([index[name] for name in labels.values()], dtype=np.int64),
        [name.lower() for name in classnames],
        list(EMOJI_GROUP_TEMPLATES),
    )


def demo_metrics(encoder, emoji_dir: str | Path, clipart_dir: str | Path, templates: str | None = None) -> dict[str, EvalResult]:
    """The three measurements of the bar; ``templates`` overrides the emoji-group prompts
    with a set name or file."""
    groups = emoji_groups_dataset(emoji_dir)
    group_images = encode_images(encoder, groups.images)  # once, for both classifiers
    return {
        "emoji_names": evaluate_retrieval(encoder, emoji_names_dataset(emoji_dir)),
        "clipart_test": evaluate_retrieval(encoder, load_retrieval_dataset(clipart_dir, split="test")),
        "emoji_groups": evaluate_zeroshot(encoder, groups, ZeroShotConfig(templates), group_images),
        "emoji_groups_prompts_only": evaluate_zeroshot(
            encoder, groups, ZeroShotConfig(templates, text_memory="off"), group_images
        ),
    }


def below_bar(results: dict[str, EvalResult]) -> list[str]:
    """The metrics under the bar, as 'task metric value < bar'; empty when all pass."""
    return [
        f"{task} {metric} {results[task].metrics[metric]:.3f} < {bar}"
        for task, bars in BAR.items() if task in results
        for metric, bar in bars.items() if (results[task].metrics[metric] or 0.0) < bar
    ]
