"""The one image pipeline (``models.pipeline``): files decoded by worker processes, with the
default workers, give exactly the vectors that decoding each image here gives; a bad image
stops it with the image's name; no worker outlives it."""

from __future__ import annotations

import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from clipforge.data.pairs import ImageLocation
from clipforge.errors import ImageDecodeError
from clipforge.models import load_encoder
from clipforge.models.pipeline import decode_images
from clipforge.models.workers import MIN_ITEMS_FOR_POOL
from conftest import make_photo

N = MIN_ITEMS_FOR_POOL + 8  # enough that the default workers are used


def _children() -> set[int]:
    try:
        tasks = Path(f"/proc/{os.getpid()}/task")
        return {int(c) for t in tasks.iterdir() for c in (t / "children").read_text().split()}
    except OSError:  # not Linux
        return set()


@pytest.fixture(scope="module")
def encoder(tiny_clip_dir):
    return load_encoder(f"hf:{tiny_clip_dir}", device="cpu", precision="fp32")


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> list[Path]:
    root = tmp_path_factory.mktemp("pipeline-photos")
    sizes = [(640, 480), (1600, 1200), (480, 640)]  # real photo sizes: JPEG draft mode applies
    return [make_photo(root / f"p{i:02d}.jpg", size=sizes[i % 3], seed=i, quality=90) for i in range(N)]


def test_files_through_the_workers_equal_images_decoded_here(encoder, photos):
    before = _children()
    pooled = encoder.encode_images(photos)  # default workers: one process per core
    here = encoder.encode_images(photos, workers=0)
    np.testing.assert_array_equal(pooled, here)
    one_by_one = np.concatenate([encoder.encode_images(p) for p in photos])
    np.testing.assert_allclose(pooled, one_by_one, atol=1e-5)  # other batch shapes, other kernels
    assert pooled.shape == (N, encoder.dim)
    assert _children() <= before, "a decode worker outlived the call"


def test_decoded_pixels_then_encode_decoded_is_encode_images(encoder, photos):
    decoded = list(decode_images(photos, encoder.preprocess))
    assert [d.name for d in decoded] == [str(p) for p in photos]
    assert all(d.error is None and d.pixels.dtype == np.uint8 for d in decoded)
    assert decoded[0].pixels.shape == (*encoder.preprocess.output_size, 3)
    np.testing.assert_array_equal(encoder.encode_decoded([d.pixels for d in decoded]), encoder.encode_images(photos))


def test_a_bad_file_stops_it_naming_the_file(encoder, photos, tmp_path):
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(photos[0].read_bytes()[:500])
    before = _children()
    with pytest.raises(ImageDecodeError, match="broken.jpg") as caught:
        encoder.encode_images(photos[:10] + [broken] + photos[10:])
    assert "truncated" in str(caught.value)
    assert _children() <= before, "a decode worker outlived the error"


def test_bad_items_come_back_with_their_reason(encoder, photos, tmp_path):
    empty = tmp_path / "empty.png"
    empty.write_bytes(b"")
    decoded = list(decode_images(photos + [empty, tmp_path / "missing.jpg"], encoder.preprocess))
    assert [d.error for d in decoded[-2:]] == ["empty file", "file not found"]
    assert all(d.error is None for d in decoded[:-2])


def test_tar_members_and_pil_images(encoder, photos, tmp_path):
    shard = tmp_path / "shard.tar"
    with tarfile.open(shard, "w") as tar:
        for p in photos:
            tar.add(p, arcname=p.name)
    with tarfile.open(shard) as tar:
        members = [ImageLocation(str(shard), m.name, m.offset_data, m.size) for m in tar.getmembers()]
    from_members = encoder.encode_images(members)
    with_pil = encoder.encode_images([Image.open(p) for p in photos])
    from_files = encoder.encode_images(photos)
    np.testing.assert_array_equal(from_members, from_files)
    # A PIL image given whole is decoded without draft mode: the same picture, not the same bits.
    assert (np.sum(with_pil * from_files, axis=1) > 0.99).all()
