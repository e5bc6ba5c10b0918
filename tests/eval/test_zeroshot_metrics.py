"""Zero-shot metrics on hand-built cases and against CLIP_benchmark's computation; template sets."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from clipforge.errors import InputError, NotFoundError
from clipforge.eval.templates import OPENAI_IMAGENET_TEMPLATES, TEMPLATE_SETS, resolve_templates
from clipforge.eval.zeroshot import classification_metrics, classification_ranks
from clipforge.search.classify import DEFAULT_TEMPLATES

# With the classifier set to the identity, each image embedding is its row of class scores.


def test_three_classes_acc5_is_undefined():
    scores = np.array(
        [
            [0.9, 0.1, 0.0],  # class 0, right
            [0.2, 0.8, 0.1],  # class 0, predicted 1: rank 2
            [0.1, 0.7, 0.3],  # class 1, right
            [0.5, 0.1, 0.4],  # class 2, predicted 0: rank 2
        ],
        np.float32,
    )
    ranks = classification_ranks(scores, np.eye(3, dtype=np.float32), np.array([0, 0, 1, 2]))
    assert ranks.true_class_rank.tolist() == [1, 2, 1, 2]
    assert ranks.predicted.tolist() == [0, 1, 1, 0]
    m = classification_metrics(ranks)
    assert m["acc1"] == 0.5
    assert m["acc5"] is None  # fewer than 5 classes: undefined, not 0 and not 1
    # per-class recall: class 0 1/2, class 1 1/1, class 2 0/1 -> mean 0.5
    assert m["mean_per_class_recall"] == pytest.approx(0.5)


def test_six_classes_with_one_class_absent():
    scores = np.array(
        [
            [0.1, 0.2, 0.3, 0.4, 0.5, 0.6],  # class 0 ranks 6th: not in the top 5
            [0.6, 0.5, 0.4, 0.3, 0.2, 0.1],  # class 4 ranks 5th
            [0.0, 0.0, 0.9, 0.0, 0.0, 0.0],  # class 2, right
        ],
        np.float32,
    )
    ranks = classification_ranks(scores, np.eye(6, dtype=np.float32), np.array([0, 4, 2]))
    assert ranks.true_class_rank.tolist() == [6, 5, 1]
    m = classification_metrics(ranks)
    assert m["acc1"] == pytest.approx(1 / 3)
    assert m["acc5"] == pytest.approx(2 / 3)
    # classes without images (1, 3, 5) are left out of the mean, as balanced accuracy does
    assert m["mean_per_class_recall"] == pytest.approx((0 + 0 + 1) / 3)


def test_ties_go_to_the_lower_class_index():
    scores = np.array([[0.5, 0.5, 0.1], [0.5, 0.5, 0.1]], np.float32)
    ranks = classification_ranks(scores, np.eye(3, dtype=np.float32), np.array([0, 1]))
    assert ranks.true_class_rank.tolist() == [1, 2]
    assert ranks.predicted.tolist() == [0, 0]


def test_label_without_a_class_name():
    with pytest.raises(InputError, match="label 3 has no class name"):
        classification_ranks(np.eye(3, dtype=np.float32), np.eye(3, dtype=np.float32), np.array([0, 1, 3]))


# --- CLIP_benchmark: accuracy() from clip_benchmark/metrics/zeroshot_classification.py, and
# scikit-learn's balanced_accuracy_score (per-class recall over classes present in the targets).


def _cb_accuracy(output, target, topk=(1,)):
    pred = output.topk(max(topk), 1, True, True)[1].t()
    correct = pred.eq(target.view(1, -1).expand_as(pred))
    n = len(target)
    # (.item() where the original calls float() on a 1-element array, which numpy 2.4 refuses)
    return [correct[:k].reshape(-1).float().sum(0, keepdim=True).item() / n for k in topk]


def _balanced_accuracy(target, pred):
    return float(np.mean([(pred[target == c] == c).mean() for c in np.unique(target)]))


def test_equals_clip_benchmark_on_random_embeddings():
    rng = np.random.default_rng(1)
    n_classes, n_images, dim = 12, 200, 16
    # Multiples of 1/1024 in [-0.5, 0.5]: exact dot products, identical in numpy and torch.
    quantise = lambda x: (np.round(np.clip(x, -0.5, 0.5) * 1024) / 1024).astype(np.float32)  # noqa: E731
    classifier = quantise(rng.uniform(-0.5, 0.5, (n_classes, dim)))
    labels = rng.integers(0, n_classes, n_images)
    images = quantise(0.3 * classifier[labels] + rng.uniform(-0.4, 0.4, (n_images, dim)))
    logits = 100.0 * torch.from_numpy(images) @ torch.from_numpy(classifier).t()
    assert np.diff(np.sort(logits.numpy(), axis=1), axis=1).min() > 0  # no ties

    m = classification_metrics(classification_ranks(images, classifier, labels, block=13))
    acc1, acc5 = _cb_accuracy(logits, torch.from_numpy(labels), topk=(1, 5))
    assert m["acc1"] == pytest.approx(acc1, abs=1e-12)
    assert m["acc5"] == pytest.approx(acc5, abs=1e-12)
    assert m["mean_per_class_recall"] == pytest.approx(_balanced_accuracy(labels, logits.argmax(1).numpy()))
    assert 0 < acc1 < acc5 < 1


def test_template_sets():
    eighty = TEMPLATE_SETS["openai-imagenet-80"]
    assert len(eighty) == 80 and len(set(eighty)) == 80
    assert eighty == OPENAI_IMAGENET_TEMPLATES
    assert eighty[0] == "a bad photo of a {}." and eighty[-1] == "a tattoo of the {}."
    assert all(t.count("{}") == 1 for t in eighty)
    assert TEMPLATE_SETS["openai-imagenet-7"] == DEFAULT_TEMPLATES
    assert set(DEFAULT_TEMPLATES) <= set(eighty)


def test_resolve_templates(tmp_path):
    assert resolve_templates(None) == ("openai-imagenet-80", list(OPENAI_IMAGENET_TEMPLATES))
    assert resolve_templates("openai-imagenet-7")[1] == list(DEFAULT_TEMPLATES)
    assert resolve_templates(None, ["a {}."]) == ("dataset", ["a {}."])
    plain = tmp_path / "plain.txt"
    plain.write_text("# comment\na photo of a {}.\n\nart of the {}.\n")
    assert resolve_templates(str(plain)) == (str(plain), ["a photo of a {}.", "art of the {}."])
    clip_benchmark = tmp_path / "cb.txt"
    clip_benchmark.write_text("a photo of a {c}.\na sketch of the {c}.\n")
    assert resolve_templates(str(clip_benchmark))[1] == ["a photo of a {}.", "a sketch of the {}."]


def test_bad_templates(tmp_path):
    no_slot = tmp_path / "t.txt"
    no_slot.write_text("a photo of a {}.\na photo\n")
    with pytest.raises(InputError, match=r"t\.txt.*'a photo'.*\{\}"):
        resolve_templates(str(no_slot))
    with pytest.raises(InputError, match="unknown template set 'imagenet-81'"):
        resolve_templates("imagenet-81")
    with pytest.raises(NotFoundError):
        resolve_templates(str(tmp_path / "missing.txt"))
