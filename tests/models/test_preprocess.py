"""ImagePreprocess against the Hugging Face image processors it stands in for."""

from __future__ import annotations

import io
import pickle

import numpy as np
import pytest
from PIL import Image
from transformers import AutoImageProcessor, CLIPImageProcessor, SiglipImageProcessor

from clipforge.models.images import decode_bytes, decode_image
from clipforge.models.preprocess import ImagePreprocess

SIZES = {
    "landscape": (64, 48),
    "portrait": (40, 90),
    "square": (50, 50),
    "smaller-than-crop": (20, 12),
    "tiny-portrait": (7, 19),
    "exact": (32, 32),
    "very-wide": (300, 33),
}


def photo(size, seed=0, mode="RGB") -> Image.Image:
    w, h = size
    array = np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)
    return Image.fromarray(array).convert(mode)


def hf_pixels(processor, image: Image.Image) -> np.ndarray:
    return np.asarray(processor(images=image, return_tensors="np")["pixel_values"][0])


@pytest.fixture(scope="module", params=["clip", "siglip", "dual"])
def processor(request):
    directory = request.getfixturevalue(f"tiny_{request.param}_dir")
    return AutoImageProcessor.from_pretrained(directory)


@pytest.mark.parametrize("shape", list(SIZES))
def test_matches_hf_processor_on_fixtures(processor, shape):
    pre = ImagePreprocess.from_hf(processor)
    image = photo(SIZES[shape], seed=len(shape))
    ours = pre(image)
    theirs = hf_pixels(processor, image)
    assert ours.dtype == np.float32
    assert ours.shape == theirs.shape == (3, *pre.output_size)
    np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0)


def test_fixture_settings(tiny_clip_dir, tiny_siglip_dir):
    clip = ImagePreprocess.from_hf(AutoImageProcessor.from_pretrained(tiny_clip_dir))
    assert clip.resize_mode == "shortest_edge" and clip.crop == (32, 32)
    assert clip.output_size == (32, 32) and clip.draft_size == (32, 32)
    siglip = ImagePreprocess.from_hf(AutoImageProcessor.from_pretrained(tiny_siglip_dir))
    assert siglip.resize_mode == "exact" and siglip.crop is None
    assert siglip.mean == (0.5, 0.5, 0.5) and siglip.std == (0.5, 0.5, 0.5)
    assert siglip.output_size == (32, 32)


OTHER_PROCESSORS = {
    "clip-non-square-crop": lambda: CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 24, "width": 36}),
    "clip-crop-larger-than-resize": lambda: CLIPImageProcessor(size={"shortest_edge": 24}, crop_size={"height": 32, "width": 32}),
    "clip-bilinear": lambda: CLIPImageProcessor(size={"shortest_edge": 30}, crop_size={"height": 30, "width": 30}, resample=2),
    "siglip-non-square": lambda: SiglipImageProcessor(size={"height": 24, "width": 40}),
    "siglip-no-rescale": lambda: SiglipImageProcessor(size={"height": 16, "width": 16}, do_rescale=False),
    "exact-then-crop": lambda: CLIPImageProcessor(size={"height": 30, "width": 20}, crop_size={"height": 16, "width": 16}),
}


@pytest.mark.parametrize("name", list(OTHER_PROCESSORS))
def test_matches_hf_processor_on_other_settings(name):
    processor = OTHER_PROCESSORS[name]()
    pre = ImagePreprocess.from_hf(processor)
    for seed, size in enumerate(SIZES.values()):
        image = photo(size, seed)
        ours, theirs = pre(image), hf_pixels(processor, image)
        assert ours.shape == theirs.shape == (3, *pre.output_size), (name, size)
        np.testing.assert_allclose(ours, theirs, atol=1e-4, rtol=0, err_msg=f"{name} {size}")


def test_output_size_is_height_width():
    pre = ImagePreprocess.from_hf(SiglipImageProcessor(size={"height": 24, "width": 40}))
    assert pre.output_size == (24, 40)
    assert pre(photo((100, 100))).shape == (3, 24, 40)
    cropped = ImagePreprocess.from_hf(CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 24, "width": 36}))
    assert cropped.output_size == (24, 36)
    assert cropped(photo((90, 60))).shape == (3, 24, 36)


def test_draft_size_is_width_height_and_covers_the_resize():
    exact = ImagePreprocess.from_hf(SiglipImageProcessor(size={"height": 24, "width": 40}))
    assert exact.draft_size == (40, 24)
    shortest = ImagePreprocess.from_hf(CLIPImageProcessor(size={"shortest_edge": 40}, crop_size={"height": 24, "width": 36}))
    assert shortest.draft_size == (40, 40)  # either side may end up the short one


def test_draft_decoded_jpeg_keeps_enough_pixels():
    # A 1600x1200 JPEG drafted for a 224 shortest-edge model comes back at 1/4 scale; the
    # preprocessed result stays close to the one from the full decode.
    pre = ImagePreprocess.from_hf(CLIPImageProcessor())  # 224 shortest edge, 224 crop
    y, x = np.mgrid[0:1200, 0:1600]
    array = np.stack([x * 255 // 1600, y * 255 // 1200, (x + y) * 255 // 2800], axis=-1).astype(np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, "JPEG", quality=90)
    drafted = decode_bytes(buffer.getvalue(), draft_size=pre.draft_size)
    assert drafted.size == (400, 300)
    assert min(drafted.size) >= 224
    full = decode_bytes(buffer.getvalue())
    assert np.abs(pre(drafted) - pre(full)).mean() < 0.05


def test_resize_crop_and_normalize_split():
    pre = ImagePreprocess.from_hf(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    images = [photo((64, 48), 1), photo((30, 70), 2)]
    arrays = [pre.resize_crop(image) for image in images]
    assert all(a.dtype == np.uint8 and a.shape == (32, 32, 3) for a in arrays)
    batch = pre.normalize(np.stack(arrays))
    assert batch.dtype == np.float32 and batch.shape == (2, 3, 32, 32) and batch.flags.c_contiguous
    for row, image in zip(batch, images):
        np.testing.assert_array_equal(row, pre(image))


def test_transparent_pil_image_matches_its_decoded_file(tmp_path):
    # A PIL image handed in directly is converted the way decode_image converts its file.
    array = np.zeros((40, 40, 4), np.uint8)
    array[10:30, 10:30] = (200, 30, 30, 255)
    image = Image.fromarray(array, "RGBA")
    image.save(tmp_path / "logo.png")
    pre = ImagePreprocess.from_hf(CLIPImageProcessor(size={"shortest_edge": 32}, crop_size={"height": 32, "width": 32}))
    direct = pre.resize_crop(image)
    np.testing.assert_array_equal(direct, pre.resize_crop(decode_image(tmp_path / "logo.png")))
    assert tuple(direct[0, 0]) == (255, 255, 255)


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "CMYK"])
def test_other_modes_are_accepted(mode):
    pre = ImagePreprocess.from_hf(SiglipImageProcessor(size={"height": 16, "width": 16}))
    assert pre(photo((20, 20), mode=mode)).shape == (3, 16, 16)


def test_picklable_for_decode_workers(tiny_clip_dir):
    pre = ImagePreprocess.from_hf(AutoImageProcessor.from_pretrained(tiny_clip_dir))
    clone = pickle.loads(pickle.dumps(pre))
    assert clone == pre
    image = photo((64, 48))
    np.testing.assert_array_equal(clone(image), pre(image))


def test_unsupported_size_setting():
    processor = CLIPImageProcessor(size={"shortest_edge": 32})
    processor.size = {"longest_edge": 32}
    with pytest.raises(ValueError, match="unsupported image processor size"):
        ImagePreprocess.from_hf(processor)
