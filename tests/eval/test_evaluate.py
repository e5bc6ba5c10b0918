"""Evaluation end to end in Python, over a tiny random CLIP and real files."""

from __future__ import annotations

import numpy as np
import pytest

from clipforge.errors import ImageDecodeError, InputError
from clipforge.eval import (
    EncodeConfig,
    ImageRef,
    RetrievalConfig,
    ZeroShotConfig,
    evaluate_retrieval,
    evaluate_zeroshot,
    load_classification_dataset,
    load_retrieval_dataset,
    retrieval_metrics,
    retrieval_ranks,
)
from clipforge.eval.encode import encode_images
from clipforge.models import load_encoder
from clipforge.search.classify import build_classifier
from eval_data import image_folder, karpathy, photo, webdataset_classification, webdataset_retrieval, write_tar

SMALL_BATCHES = EncodeConfig(image_batch_size=2, text_batch_size=3, workers=2)


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp32")


def test_retrieval_matches_the_encoder_called_directly(encoder, tmp_path):
    data = load_retrieval_dataset(karpathy(tmp_path))
    result = evaluate_retrieval(encoder, data, RetrievalConfig(encode=SMALL_BATCHES))
    # The batched, threaded pipeline must give what the encoder's own serial path gives.
    images = encoder.encode_images([r.path for r in data.images])
    texts = encoder.encode_texts(data.captions)
    assert result.metrics == retrieval_metrics(retrieval_ranks(texts, images, data.caption_image))
    assert result.to_dict()["task"] == "zeroshot_retrieval"
    assert result.details | {"precision": None} == {
        "format": "karpathy", "split": "test", "images": 3, "captions": 8, "precision": None, "device": "cpu",
    }


def test_tar_members_encode_like_the_same_files(encoder, tmp_path):
    shards = webdataset_retrieval(tmp_path / "wds")
    for i in range(4):  # the same bytes as the shard's images, as files
        photo(tmp_path / "files" / f"{i}.jpg", seed=i)
    from_tar = encode_images(encoder, load_retrieval_dataset(shards).images, SMALL_BATCHES)
    files = [ImageRef(str(tmp_path / "files" / f"{i}.jpg")) for i in range(4)]
    from_files = encode_images(encoder, files, SMALL_BATCHES)
    np.testing.assert_array_equal(from_tar, from_files)


def test_undecodable_image_is_an_error_naming_it(encoder, tmp_path):
    path = karpathy(tmp_path)
    (tmp_path / "val2014" / "b.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    with pytest.raises(ImageDecodeError, match=r"val2014/b\.jpg"):
        evaluate_retrieval(encoder, load_retrieval_dataset(path), RetrievalConfig(encode=SMALL_BATCHES))


def test_undecodable_tar_member_is_named(encoder, tmp_path):
    write_tar(tmp_path / "0.tar", [("good", {"txt": "a cat"}), ("bad", {"jpg": b"garbage", "txt": "a dog"})])
    with pytest.raises(InputError, match=r"sample .*0\.tar:good has no image entry"):
        load_retrieval_dataset(tmp_path / "0.tar")
    write_tar(tmp_path / "1.tar", [("bad", {"jpg": b"garbage", "txt": "a dog"})])
    with pytest.raises(ImageDecodeError, match=r"1\.tar:bad\.jpg"):
        evaluate_retrieval(encoder, load_retrieval_dataset(tmp_path / "1.tar"))


def test_zeroshot_matches_the_classifier_applied_by_hand(encoder, tmp_path):
    data = load_classification_dataset(image_folder(tmp_path, {"cat": 3, "dog": 2, "bird": 2}))
    result = evaluate_zeroshot(encoder, data, ZeroShotConfig(templates="openai-imagenet-7", encode=SMALL_BATCHES))
    classifier = build_classifier(encoder, ["bird", "cat", "dog"])  # the 7 are build_classifier's default
    predicted = np.argmax(encoder.encode_images([r.path for r in data.images]) @ classifier.T, axis=1)
    assert result.metrics["acc1"] == pytest.approx(np.mean(predicted == data.labels))
    assert result.metrics["acc5"] is None  # three classes
    assert result.details["templates"] == "openai-imagenet-7" and result.details["prompts"] == 7
    assert result.to_dict()["task"] == "zeroshot_classification"


def test_zeroshot_uses_the_datasets_own_templates(encoder, tmp_path):
    data = load_classification_dataset(webdataset_classification(tmp_path))
    result = evaluate_zeroshot(encoder, data)
    assert (result.details["templates"], result.details["prompts"]) == ("dataset", 2)
    overridden = evaluate_zeroshot(encoder, data, ZeroShotConfig(templates="openai-imagenet-80"))
    assert overridden.details["prompts"] == 80
