"""load_encoder over the tiny CLIP, SigLIP and dual-encoder checkpoints, checked against
direct computation with the Hugging Face models."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from PIL import Image

from clipforge.errors import ImageDecodeError, InputError, ModelLoadError
from clipforge.models import Encoder, load_encoder
from clipforge.models.device import cpu_has_native_bf16

FAMILIES = ["clip", "siglip", "dual"]
DIMS = {"clip": 16, "siglip": 32, "dual": 16}  # projection_dim; SigLIP has no projection
TEXTS = ["a dog", "a photo of a red car on the beach at night", "", "green apple", "a small bird in the left corner"]


def images(n: int = 5) -> list[Image.Image]:
    sizes = [(64, 48), (40, 90), (50, 50), (20, 12), (33, 32), (120, 40)]
    rng = np.random.default_rng(0)
    out = []
    for i in range(n):
        w, h = sizes[i % len(sizes)]
        out.append(Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)))
    return out


@pytest.fixture(scope="module", params=FAMILIES)
def family(request) -> str:
    return request.param


@pytest.fixture(scope="module")
def model_dir(request, family):
    return request.getfixturevalue(f"tiny_{family}_dir")


@pytest.fixture(scope="module")
def encoder(model_dir) -> Encoder:
    return load_encoder(f"hf:{model_dir}", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def hf_parts(model_dir):
    from transformers import AutoImageProcessor, AutoModel, AutoTokenizer

    model = AutoModel.from_pretrained(model_dir, dtype=torch.float32).eval()
    return model, AutoTokenizer.from_pretrained(model_dir), AutoImageProcessor.from_pretrained(model_dir)


def unit(features) -> np.ndarray:
    features = features if isinstance(features, torch.Tensor) else features.pooler_output
    return torch.nn.functional.normalize(features.float(), dim=-1).numpy()


# --- the contract ---------------------------------------------------------------------


def test_loaded_as_family(encoder, family):
    assert encoder.family == family
    assert encoder.dim == DIMS[family]
    assert encoder.precision == "fp32" and encoder.device.type == "cpu"
    assert encoder.max_text_length == 32


def test_texts_float32_unit_norm(encoder):
    vectors = encoder.encode_texts(TEXTS)
    assert vectors.dtype == np.float32
    assert vectors.shape == (len(TEXTS), encoder.dim)
    assert vectors.flags.c_contiguous
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.isfinite(vectors).all()
    assert not np.allclose(vectors[0], vectors[1])  # different texts, different vectors


def test_images_float32_unit_norm(encoder):
    vectors = encoder.encode_images(images())
    assert vectors.dtype == np.float32
    assert vectors.shape == (5, encoder.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert not np.allclose(vectors[0], vectors[1])


def test_empty_inputs(encoder):
    for vectors in (encoder.encode_texts([]), encoder.encode_images([]), encoder.encode_texts(iter(()))):
        assert vectors.shape == (0, encoder.dim) and vectors.dtype == np.float32


def test_batches_equal_one_by_one(encoder):
    batched = encoder.encode_texts(TEXTS, batch_size=2)  # uneven last batch
    single = np.concatenate([encoder.encode_texts([t]) for t in TEXTS])
    np.testing.assert_allclose(batched, single, atol=1e-5)
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), single, atol=1e-5)

    pictures = images()
    batched = encoder.encode_images(pictures, batch_size=2)
    single = np.concatenate([encoder.encode_images([p]) for p in pictures])
    np.testing.assert_allclose(batched, single, atol=1e-5)


def test_images_equal_direct_hf_computation(encoder, hf_parts):
    model, _, processor = hf_parts
    pictures = images()
    with torch.no_grad():
        pixels = processor(images=pictures, return_tensors="pt")["pixel_values"]
        expected = unit(model.get_image_features(pixel_values=pixels))
    np.testing.assert_allclose(encoder.encode_images(pictures), expected, atol=1e-5)


def test_texts_equal_direct_hf_computation(encoder, hf_parts, family):
    model, tokenizer, _ = hf_parts
    if family == "siglip":  # trained with max_length padding, and no attention mask
        batch = tokenizer(TEXTS, padding="max_length", max_length=32, truncation=True, return_tensors="pt")
        batch = {"input_ids": batch["input_ids"]}
    else:
        batch = tokenizer(TEXTS, padding=True, truncation=True, return_tensors="pt")
    with torch.no_grad():
        expected = unit(model.get_text_features(**batch))
    np.testing.assert_allclose(encoder.encode_texts(TEXTS), expected, atol=1e-5)


def test_texts_longer_than_the_context_are_truncated(encoder):
    long = encoder.encode_texts([" ".join(["dog"] * 500)])
    assert long.shape == (1, encoder.dim)
    # Every word is one token, and start and end tokens take two places.
    cut = encoder.encode_texts([" ".join(["dog"] * (encoder.max_text_length - 2))])
    np.testing.assert_allclose(long, cut, atol=1e-5)
    shorter = encoder.encode_texts([" ".join(["dog"] * (encoder.max_text_length - 3))])
    assert not np.allclose(long, shorter, atol=1e-4)


def test_files_equal_their_decoded_images(encoder, tmp_path):
    pictures = images(3)
    paths = []
    for i, picture in enumerate(pictures):
        paths.append(tmp_path / f"{i}.png")
        picture.save(paths[-1])
    from_files = encoder.encode_images([str(paths[0]), paths[1], pictures[2]])
    np.testing.assert_allclose(from_files, encoder.encode_images(pictures), atol=1e-6)


def test_a_single_text_or_image_is_one_item(encoder, tmp_path):
    text = encoder.encode_texts("a dog")
    assert text.shape == (1, encoder.dim)
    np.testing.assert_allclose(text, encoder.encode_texts(["a dog"]), atol=1e-6)
    picture = images(1)[0]
    picture.save(tmp_path / "one.png")
    for single in (picture, tmp_path / "one.png", str(tmp_path / "one.png")):
        vectors = encoder.encode_images(single)
        assert vectors.shape == (1, encoder.dim)
        np.testing.assert_allclose(vectors, encoder.encode_images([picture]), atol=1e-6)


def test_non_string_text_is_an_input_error(encoder):
    with pytest.raises(InputError, match="strings"):
        encoder.encode_texts(["a dog", None])


def test_undecodable_file_raises_with_its_path(encoder, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_text("not a picture")
    with pytest.raises(ImageDecodeError) as info:
        encoder.encode_images([images(1)[0], bad])
    assert info.value.path == str(bad)


def test_logit_scale(encoder, family):
    assert encoder.logit_scale > 0
    assert (encoder.logit_bias is not None) == (family == "siglip")


# --- SigLIP padding -----------------------------------------------------------------


def test_siglip_pads_every_text_to_max_length(tiny_siglip_dir):
    encoder = load_encoder(f"hf:{tiny_siglip_dir}", device="cpu", precision="fp32")
    alone = encoder.encode_texts(["a dog"])
    in_batch = encoder.encode_texts(["a dog", "a photo of a red car on the beach at night in the left corner"])
    np.testing.assert_allclose(alone[0], in_batch[0], atol=1e-5)
    assert encoder._tokenize(["a dog"])["input_ids"].shape == (1, encoder.max_text_length)


# --- precision and device --------------------------------------------------------------


def test_bf16_stays_within_tolerance_of_fp32(tiny_clip_dir):
    fp32 = load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp32")
    bf16 = load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="bf16")
    assert bf16.precision == "bf16" and next(bf16.model.parameters()).dtype == torch.bfloat16

    pictures = [Image.new("RGB", (48, 48), color) for color in
                [(0, 0, 0), (255, 255, 255), (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]]
    y, x = np.mgrid[:48, :48]
    pictures.append(Image.fromarray((((x // 8 + y // 8) % 2) * 255).astype(np.uint8)).convert("RGB"))
    pictures.append(images(1)[0])
    texts = ["a red car", "a dog on the beach", "a green apple", "a photo of a cat", "a blue circle",
             "night", "a yellow square", "a small bird"]

    images32, images16 = fp32.encode_images(pictures), bf16.encode_images(pictures)
    texts32, texts16 = fp32.encode_texts(texts), bf16.encode_texts(texts)
    assert images16.dtype == np.float32
    assert ((images32 * images16).sum(1) >= 0.99).all()
    assert ((texts32 * texts16).sum(1) >= 0.99).all()

    scores32, scores16 = texts32 @ images32.T, texts16 @ images16.T
    tolerance = 0.015
    assert np.abs(scores32 - scores16).max() < tolerance
    # Retrieval: the top-1 image of every text is the same, except where fp32 itself sees
    # a near-tie (closer than the tolerance), which a random tiny model produces.
    top2 = np.sort(scores32, axis=1)[:, -2:]
    clear = top2[:, 1] - top2[:, 0] > 2 * tolerance
    assert clear.sum() >= len(texts) // 2, "too few clear winners for the check to mean anything"
    np.testing.assert_array_equal(scores16.argmax(1)[clear], scores32.argmax(1)[clear])
    # And image-to-image retrieval ranks the same way.
    np.testing.assert_array_equal(
        np.argsort(-(images16 @ images16.T), axis=1)[:, :2], np.argsort(-(images32 @ images32.T), axis=1)[:, :2]
    )


def test_auto_precision_on_cpu(tiny_clip_dir):
    encoder = load_encoder(f"hf:{tiny_clip_dir}", device="cpu")
    assert encoder.precision == ("bf16" if cpu_has_native_bf16() else "fp32")


def test_fp16_on_cpu_is_refused(tiny_clip_dir):
    with pytest.raises(InputError, match="fp16"):
        load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp16")


@pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")
def test_cuda_without_a_gpu_is_refused(tiny_clip_dir):
    with pytest.raises(InputError, match="cuda"):
        load_encoder(f"hf:{tiny_clip_dir}", device="cuda")


@pytest.mark.parametrize("kwargs, word", [({"device": "tpu"}, "device"), ({"precision": "fp8"}, "precision")])
def test_unknown_device_or_precision(tiny_clip_dir, kwargs, word):
    with pytest.raises(InputError, match=word):
        load_encoder(f"hf:{tiny_clip_dir}", **kwargs)


# --- loading errors ------------------------------------------------------------------


def test_directory_without_config(tmp_path, tiny_clip_dir):
    shutil.copy(tiny_clip_dir / "preprocessor_config.json", tmp_path)
    with pytest.raises(ModelLoadError, match="no config.json"):
        load_encoder(f"hf:{tmp_path}")


def test_empty_directory(tmp_path):
    with pytest.raises(ModelLoadError, match="not a model directory"):
        load_encoder(f"hf:{tmp_path}")


def test_directory_without_tokenizer(tmp_path, tiny_clip_dir):
    target = tmp_path / "no-tokenizer"
    shutil.copytree(tiny_clip_dir, target)
    for path in target.glob("tokenizer*"):
        path.unlink()
    with pytest.raises(ModelLoadError, match="no tokenizer"):
        load_encoder(f"hf:{target}")


def test_directory_without_weights(tmp_path, tiny_clip_dir):
    target = tmp_path / "no-weights"
    shutil.copytree(tiny_clip_dir, target)
    (target / "model.safetensors").unlink()
    with pytest.raises(ModelLoadError, match="cannot load"):
        load_encoder(f"hf:{target}")


def test_broken_config(tmp_path, tiny_clip_dir):
    target = tmp_path / "broken"
    shutil.copytree(tiny_clip_dir, target)
    (target / "config.json").write_text("{not json")
    with pytest.raises(ModelLoadError, match="config.json"):
        load_encoder(f"hf:{target}")


def test_hub_id_offline_points_at_a_local_directory(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as info:
        load_encoder("hf:no-such-org/no-such-model")
    message = str(info.value)
    assert "no-such-org/no-such-model" in message
    assert "local" in message and "hf:/path/to/model-dir" in message


def test_not_a_dual_encoder(tmp_path):
    from transformers import BertConfig, BertModel

    config = BertConfig(vocab_size=50, hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32)
    BertModel(config).save_pretrained(tmp_path)
    with pytest.raises(ModelLoadError, match="not a dual encoder"):
        load_encoder(f"hf:{tmp_path}")


# --- caching -------------------------------------------------------------------------


def test_same_spec_gives_the_same_object(tiny_clip_dir, tiny_clip_other_dir, monkeypatch):
    first = load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp32")
    assert load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp32") is first
    monkeypatch.chdir(tiny_clip_dir.parent)
    assert load_encoder(f"hf:{tiny_clip_dir.name}", device="cpu", precision="fp32") is first
    assert load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="bf16") is not first
    other = load_encoder(f"hf:{tiny_clip_other_dir}", device="cpu", precision="fp32")
    assert other is not first
    assert not np.allclose(other.encode_texts(["a dog"]), first.encode_texts(["a dog"]))
