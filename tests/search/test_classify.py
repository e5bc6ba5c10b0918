import numpy as np
import pytest

from clipforge.errors import InputError, NotFoundError
from clipforge.models import load_encoder
from clipforge.search.classify import (
    DEFAULT_TEMPLATES,
    build_classifier,
    class_probabilities,
    classify,
    load_templates,
)
from conftest import make_photo


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", precision="fp32")


def test_class_vector_is_the_renormalised_mean_of_normalised_prompts(clip):
    templates = ["a photo of a {}.", "{} in the wild", "art of the {}."]
    classifier = build_classifier(clip, ["cat", "dog"], templates)
    for row, label in zip(classifier, ["cat", "dog"]):
        prompts = clip.encode_texts([t.format(label) for t in templates])
        mean = (prompts / np.linalg.norm(prompts, axis=1, keepdims=True)).mean(0)
        assert np.allclose(row, mean / np.linalg.norm(mean), atol=1e-5)
    assert np.allclose(np.linalg.norm(classifier, axis=1), 1, atol=1e-5)


def test_default_templates_are_the_seven_and_each_has_one_slot():
    assert len(DEFAULT_TEMPLATES) == 7
    assert all(t.count("{}") == 1 for t in DEFAULT_TEMPLATES)


def test_clip_probabilities_are_a_softmax_and_siglip_a_sigmoid():
    sims = np.array([[0.2, 0.1, -0.3]])
    soft = class_probabilities(sims, logit_scale=100.0, logit_bias=None)
    expected = np.exp(sims * 100) / np.exp(sims * 100).sum()
    assert np.allclose(soft, expected) and soft.sum() == pytest.approx(1)
    sig = class_probabilities(sims, logit_scale=10.0, logit_bias=-2.0)
    assert np.allclose(sig, 1 / (1 + np.exp(-(sims * 10 - 2))))


def test_classify_ranks_labels_by_probability(clip, tmp_path, tiny_siglip_dir):
    image = make_photo(tmp_path / "x.jpg", seed=3)
    ranked = classify(clip, [image], ["cat", "dog", "bird"])[0]
    probs = [p.probability for p in ranked]
    assert probs == sorted(probs, reverse=True) and sum(probs) == pytest.approx(1, abs=1e-5)
    assert {p.label for p in ranked} == {"cat", "dog", "bird"}
    siglip = load_encoder(f"hf:{tiny_siglip_dir}", precision="fp32")
    independent = classify(siglip, [image], ["cat", "dog"])[0]
    assert all(0 < p.probability < 1 for p in independent)


def test_bad_labels_and_templates(clip, tmp_path):
    with pytest.raises(InputError):
        build_classifier(clip, [], DEFAULT_TEMPLATES)
    with pytest.raises(InputError, match="unique"):
        build_classifier(clip, ["cat", "cat"], DEFAULT_TEMPLATES)
    with pytest.raises(InputError, match="slot"):
        build_classifier(clip, ["cat", "dog"], ["no slot here"])
    with pytest.raises(InputError, match="slot"):
        build_classifier(clip, ["cat", "dog"], ["{} and {}"])
    path = tmp_path / "templates.txt"
    path.write_text("# comment\n\na photo of a {}.\n")
    assert load_templates(path) == ["a photo of a {}."]
    with pytest.raises(NotFoundError):
        load_templates(tmp_path / "missing.txt")


def test_other_braces_in_a_template_are_text(clip):
    classifier = build_classifier(clip, ["cat"], ["a {} in {braces} and {0}"])
    expected = clip.encode_texts(["a cat in {braces} and {0}"])[0]
    assert np.allclose(classifier[0], expected / np.linalg.norm(expected), atol=1e-5)
