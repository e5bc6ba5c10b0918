"""builtin:demo, the model shipped in the package: it loads offline, and it finds emoji by
name on a dataset the emoji builder makes from the real Debian packages."""

from __future__ import annotations

import csv
import socket
from pathlib import Path

import numpy as np
import pytest

from clipforge.data.builders import EmojiConfig, build_emoji
from clipforge.data.builders.emoji import DEFAULT_CLDR, DEFAULT_EMOJI_TEST, DEFAULT_FONT
from clipforge.eval import RetrievalDataset, evaluate_retrieval
from clipforge.eval.demo import BAR, emoji_names_dataset
from clipforge.models import load_encoder
from clipforge.models.builtin import BUILTIN_DIR, WEIGHTS

need_emoji = pytest.mark.skipif(
    not (DEFAULT_FONT.exists() and DEFAULT_CLDR.exists() and DEFAULT_EMOJI_TEST.exists()),
    reason="needs fonts-noto-color-emoji, unicode-cldr-core and unicode-data (.ci/apt-deps.sh)",
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


def test_weights_are_small_and_the_text_tower_is_not_copied():
    weights = BUILTIN_DIR / "demo" / WEIGHTS
    assert weights.stat().st_size <= 30 * 2**20
    from safetensors import safe_open

    with safe_open(weights, "pt") as f:
        keys = list(f.keys())
    assert not [k for k in keys if k.startswith("text_model.")]
    assert any(k.startswith("vision_model.") for k in keys)


def test_loads_offline_with_mean_pooled_text(demo):
    assert demo.family == "dual" and demo.dim == 256
    assert demo.model.config.clipforge_text_pooling == "mean"
    vectors = demo.encode_texts(["red apple", "a dog"])
    assert vectors.shape == (2, 256)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


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
