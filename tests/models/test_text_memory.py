"""The text memory: images read through their nearest captions before zero-shot classification."""

import shutil

import numpy as np
import pytest

from clipforge.errors import InputError, ModelLoadError, NotFoundError
from clipforge.models import load_encoder
from clipforge.search.classify import classify
from clipforge.models.text_memory import MEMORY_FILE, TextMemory, resolve_text_memory
from conftest import make_photo


def _unit(rows: np.ndarray) -> np.ndarray:
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.fixture(scope="module")
def clip(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", precision="fp32")


def test_projection_is_the_softmax_weighted_mean_of_the_nearest_captions():
    rng = np.random.default_rng(0)
    captions, images = _unit(rng.normal(size=(50, 8))), _unit(rng.normal(size=(1500, 8)))
    memory = TextMemory(captions, top_k=5, temperature=7.0)
    projected = memory.project(images)  # more images than one block: blocks must agree
    for i in (0, 1023, 1024, 1499):
        scores = captions @ images[i]
        nearest = np.argsort(-scores)[:5]
        weights = np.exp(7.0 * scores[nearest])
        expected = (weights[:, None] * captions[nearest]).sum(0)
        np.testing.assert_allclose(projected[i], expected / np.linalg.norm(expected), atol=1e-5)
    np.testing.assert_allclose(np.linalg.norm(projected, axis=1), 1, atol=1e-5)


def test_one_nearest_caption_replaces_the_image_vector_by_that_caption():
    rng = np.random.default_rng(1)
    captions = _unit(rng.normal(size=(20, 6)))
    images = _unit(captions[[3, 7]] + 0.05 * rng.normal(size=(2, 6)))
    projected = TextMemory(captions, top_k=1).project(images)
    np.testing.assert_allclose(projected, captions[[3, 7]], atol=1e-6)


def test_bad_memories_are_refused():
    with pytest.raises(InputError, match="at least one"):
        TextMemory(np.zeros((0, 4)))
    with pytest.raises(InputError, match="non-finite"):
        TextMemory(np.full((2, 4), np.nan))
    with pytest.raises(InputError, match="top_k"):
        TextMemory(np.eye(4), top_k=0)
    with pytest.raises(InputError, match="temperature"):
        TextMemory(np.eye(4), temperature=0)
    with pytest.raises(InputError, match="image_mix"):
        TextMemory(np.eye(4), image_mix=1.5)
    with pytest.raises(InputError, match="the text memory has 4-d vectors, but these image vectors are 3-d ones"):
        TextMemory(np.eye(4)).project(np.eye(3))


def test_save_and_load_keep_vectors_and_settings(tmp_path):
    rng = np.random.default_rng(2)
    memory = TextMemory(_unit(rng.normal(size=(30, 16))), top_k=4, temperature=25.0, image_mix=0.25)
    path = memory.save(tmp_path / MEMORY_FILE)
    assert not list(tmp_path.glob("*.tmp"))
    loaded = TextMemory.load(path)
    assert (loaded.top_k, loaded.temperature, loaded.source, loaded.image_mix) == (4, 25.0, str(path), 0.25)
    np.testing.assert_allclose(loaded.vectors, memory.vectors, atol=1e-3)  # stored as float16


def test_missing_and_corrupt_memory_files_are_one_line_errors(tmp_path):
    with pytest.raises(NotFoundError, match="does not exist"):
        TextMemory.load(tmp_path / "nope.safetensors")
    path = TextMemory(np.eye(4)).save(tmp_path / MEMORY_FILE)
    path.write_bytes(path.read_bytes()[:40])  # a write cut short
    with pytest.raises(ModelLoadError, match="cannot read text memory") as err:
        TextMemory.load(path)
    assert "\n" not in str(err.value)


def test_a_one_caption_memory_decides_the_class(clip, tmp_path):
    # Through a memory that holds only "a dog", every image reads as exactly that text, so
    # with the bare label as the prompt "dog" scores a cosine of 1 and wins; without the
    # memory the random tiny model ranks by its image vector.
    images = [make_photo(tmp_path / f"{i}.jpg", seed=i) for i in range(3)]
    captions = tmp_path / "captions.txt"
    captions.write_text("a dog\n\n")
    memory = resolve_text_memory(clip, captions)
    assert len(memory.vectors) == 1 and memory.source == str(captions)
    for ranked in classify(clip, images, ["a cat", "a dog"], ["{}"], text_memory=captions):
        assert ranked[0].label == "a dog" and ranked[0].score == pytest.approx(1, abs=1e-5)
    plain = classify(clip, images, ["a cat", "a dog"], ["{}"], text_memory="off")
    assert all(ranked[0].score < 0.99 for ranked in plain)


def test_resolving_a_memory(clip, tmp_path):
    assert resolve_text_memory(clip, "off") is None
    assert resolve_text_memory(clip, "auto") is None  # the tiny model ships none
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(InputError, match="no captions"):
        resolve_text_memory(clip, empty)
    with pytest.raises(NotFoundError, match="neither auto, off nor an existing file"):
        resolve_text_memory(clip, tmp_path / "missing.txt")
    wrong = TextMemory(np.eye(clip.dim + 1)).save(tmp_path / "wrong.safetensors")
    with pytest.raises(InputError, match="but the model makes"):
        resolve_text_memory(clip, wrong)


def test_image_mix_moves_image_vectors_towards_their_projection():
    rng = np.random.default_rng(3)
    captions, images = _unit(rng.normal(size=(40, 8))), _unit(rng.normal(size=(5, 8)))
    assert TextMemory(captions).blend(images) is images  # no mix: untouched
    memory = TextMemory(captions, top_k=3, image_mix=0.25)
    expected = _unit(0.75 * images + 0.25 * memory.project(images))
    np.testing.assert_allclose(memory.blend(images), expected, atol=1e-6)


def test_a_mixing_memory_changes_the_models_image_vectors_and_its_collections_fingerprint(
    clip, tiny_clip_dir, photo_dir, tmp_path
):
    from clipforge import Collection

    folder = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, folder)
    photos = sorted(photo_dir.glob("*.jpg"))[:3]
    with Collection.create(tmp_path / "c", model=f"hf:{folder}") as c:
        c.add_images([photo_dir], workers=0)
    memory = TextMemory(clip.encode_texts(["a dog", "a cat", "a car"]), top_k=2, image_mix=0.5)
    memory.save(folder / MEMORY_FILE)
    mixing = load_encoder(f"hf:{folder}", precision="fp32")
    raw = clip.encode_images(photos)
    np.testing.assert_allclose(mixing.encode_images(photos), memory.blend(raw), atol=1e-3)
    assert np.abs(mixing.encode_images(photos) - raw).max() > 0.05
    with Collection.open(tmp_path / "c") as c:
        assert c.model_changed()  # vectors made without the memory no longer fit


def test_a_model_folder_ships_its_memory_and_a_wrong_one_fails_at_load(clip, tiny_clip_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(tiny_clip_dir, folder)
    TextMemory(clip.encode_texts(["a dog", "a cat"]), top_k=1).save(folder / MEMORY_FILE)
    shipped = load_encoder(f"hf:{folder}", precision="fp32").text_memory
    assert shipped is not None and shipped.describe()["captions"] == 2 and shipped.top_k == 1
    TextMemory(np.eye(clip.dim + 1)).save(folder / MEMORY_FILE)
    with pytest.raises(ModelLoadError, match="but the model makes"):
        load_encoder(f"hf:{folder}", precision="fp32")
