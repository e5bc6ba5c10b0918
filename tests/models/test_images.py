"""Safe image decoding: every file is written here, with PIL or as raw bytes."""

from __future__ import annotations

import io
import os
import struct
import subprocess
import sys
import textwrap
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, features

from clipforge.models.images import (
    DEFAULT_MAX_PIXELS,
    IMAGE_EXTENSIONS,
    decode_bytes,
    decode_image,
    is_image_path,
)
from clipforge.errors import ImageDecodeError

RED, GREEN, BLUE, WHITE, BLACK = (255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)


def encode(image: Image.Image, fmt: str, **kwargs) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def pixel(image: Image.Image, xy) -> tuple[int, int, int]:
    return tuple(int(v) for v in image.getpixel(xy))


def assert_close(actual, expected, tol: int = 12):
    assert all(abs(a - e) <= tol for a, e in zip(actual, expected)), f"{actual} != {expected}"


def png_chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


# --- extensions ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name", ["a.jpg", "a.JPG", "dir.x/b.jpeg", "c.png", "d.webp", "e.gif", "f.bmp", "g.tif", "h.TIFF",
             "i.heic", "j.heif", "k.avif", "l.jpe"],
)
def test_is_image_path_accepts_image_extensions(name):
    assert is_image_path(name)
    assert is_image_path(Path(name))


@pytest.mark.parametrize("name", ["a.txt", "jpg", "a.jpg.txt", "a", "photo.jpg/notes", ".png.bak", "a.svg"])
def test_is_image_path_rejects_others(name):
    assert not is_image_path(name)


def test_image_extensions_are_lowercase_with_dot():
    assert {".jpg", ".jpeg", ".png", ".webp", ".gif", ".bmp", ".tif", ".tiff", ".heic", ".avif"} <= IMAGE_EXTENSIONS
    assert all(ext.startswith(".") and ext == ext.lower() for ext in IMAGE_EXTENSIONS)


# --- orientation -------------------------------------------------------------------------


def marked_photo(width=60, height=40) -> Image.Image:
    """Blue, with a red block in the top-left corner and a green one in the top-right."""
    image = Image.new("RGB", (width, height), BLUE)
    image.paste(RED, (0, 0, 16, 16))
    image.paste(GREEN, (width - 16, 0, width, 16))
    return image


def jpeg_with_orientation(path: Path, orientation: int, image: Image.Image | None = None) -> Path:
    exif = Image.Exif()
    exif[0x0112] = orientation
    (image or marked_photo()).save(path, "JPEG", quality=95, exif=exif.tobytes())
    return path


@pytest.mark.parametrize(
    "orientation, size, red_at, green_at",
    [
        # 6: the camera was turned clockwise; shown rotated 90 degrees clockwise.
        (6, (40, 60), (32, 8), (32, 52)),
        # 8: turned the other way; shown rotated 90 degrees counter-clockwise.
        (8, (40, 60), (8, 52), (8, 8)),
        (3, (60, 40), (52, 32), (8, 32)),
        (1, (60, 40), (8, 8), (52, 8)),
    ],
)
def test_exif_orientation_is_applied(tmp_path, orientation, size, red_at, green_at):
    path = jpeg_with_orientation(tmp_path / f"o{orientation}.jpg", orientation)
    with Image.open(path) as raw:
        assert raw.size == (60, 40) and raw.getexif()[0x0112] == orientation
    image = decode_image(path)
    assert image.mode == "RGB"
    assert image.size == size
    assert_close(pixel(image, red_at), RED, tol=40)
    assert_close(pixel(image, green_at), GREEN, tol=40)


def test_exif_orientation_from_bytes_too():
    exif = Image.Exif()
    exif[0x0112] = 6
    image = decode_bytes(encode(marked_photo(), "JPEG", quality=95, exif=exif.tobytes()))
    assert image.size == (40, 60)
    assert_close(pixel(image, (32, 8)), RED, tol=40)


# --- modes -----------------------------------------------------------------------------


def test_rgba_is_composited_on_white(tmp_path):
    array = np.zeros((10, 30, 4), np.uint8)  # fully transparent black
    array[:, 10:20] = (255, 0, 0, 255)  # opaque red
    array[:, 20:] = (0, 0, 255, 128)  # half-transparent blue
    Image.fromarray(array, "RGBA").save(tmp_path / "a.png")
    image = decode_image(tmp_path / "a.png")
    assert image.mode == "RGB" and image.size == (30, 10)
    assert pixel(image, (5, 5)) == WHITE  # not black: transparent areas are shown on white
    assert pixel(image, (15, 5)) == RED
    assert_close(pixel(image, (25, 5)), (127, 127, 255), tol=2)


def palette_image() -> Image.Image:
    image = Image.new("P", (20, 10), 0)
    image.putpalette(list(RED) + list(GREEN) + list(BLUE) + [0] * (253 * 3))
    image.paste(1, (10, 0, 20, 5))
    image.paste(2, (10, 5, 20, 10))
    return image


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_without_transparency(fmt):
    image = decode_bytes(encode(palette_image(), fmt))
    assert image.mode == "RGB"
    assert pixel(image, (2, 2)) == RED
    assert pixel(image, (15, 2)) == GREEN
    assert pixel(image, (15, 7)) == BLUE


@pytest.mark.parametrize("fmt", ["PNG", "GIF"])
def test_palette_transparency_is_white(fmt):
    data = encode(palette_image(), fmt, transparency=0)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "P" and "transparency" in raw.info
    image = decode_bytes(data)
    assert pixel(image, (2, 2)) == WHITE  # index 0 is red in the palette, but transparent
    assert pixel(image, (15, 2)) == GREEN


def test_cmyk_jpeg():
    cmyk = Image.new("CMYK", (20, 10), (0, 255, 255, 0))  # red in ink
    cmyk.paste((255, 0, 255, 0), (10, 0, 20, 10))  # green in ink
    data = encode(cmyk, "JPEG", quality=95)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode == "CMYK"
    image = decode_bytes(data)
    assert image.mode == "RGB"
    assert_close(pixel(image, (3, 5)), RED, tol=20)
    assert_close(pixel(image, (16, 5)), GREEN, tol=20)


@pytest.mark.parametrize("fmt", ["PNG", "TIFF"])
def test_16_bit_grayscale_is_scaled_not_clipped(fmt):
    ramp = np.tile(np.linspace(0, 65535, 256).astype(np.uint16), (4, 1))
    data = encode(Image.fromarray(ramp), fmt)
    with Image.open(io.BytesIO(data)) as raw:
        assert raw.mode.startswith("I")
    image = decode_bytes(data)
    assert image.mode == "RGB" and image.size == (256, 4)
    array = np.asarray(image)
    assert (array[..., 0] == array[..., 1]).all() and (array[..., 1] == array[..., 2]).all()
    # Clipping would turn everything above 255/65535 white; scaling keeps the whole ramp.
    np.testing.assert_array_equal(array[0, :, 0], np.arange(256))


def test_la_mode():
    la = Image.new("LA", (20, 10), (0, 0))  # transparent
    la.paste((0, 255), (10, 0, 20, 10))  # opaque black
    image = decode_bytes(encode(la, "PNG"))
    assert pixel(image, (3, 3)) == WHITE
    assert pixel(image, (15, 3)) == BLACK


def test_l_mode():
    gray = Image.fromarray(np.tile(np.arange(0, 256, 16, dtype=np.uint8), (3, 1)), "L")
    image = decode_bytes(encode(gray, "PNG"))
    assert image.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(image)[..., 1], np.asarray(gray))


def test_one_bit_mode():
    bits = Image.new("1", (16, 8), 0)
    bits.paste(1, (8, 0, 16, 8))
    image = decode_bytes(encode(bits, "PNG"))
    assert image.mode == "RGB"
    assert pixel(image, (2, 2)) == BLACK and pixel(image, (12, 2)) == WHITE


@pytest.mark.parametrize("fmt, kwargs", [("GIF", {}), ("WEBP", {"lossless": True}), ("PNG", {})])
def test_animation_gives_first_frame(fmt, kwargs):
    first, second = Image.new("RGB", (16, 16), RED), Image.new("RGB", (16, 16), BLUE)
    data = encode(first, fmt, save_all=True, append_images=[second], duration=100, **kwargs)
    with Image.open(io.BytesIO(data)) as raw:
        assert getattr(raw, "n_frames", 1) == 2
    image = decode_bytes(data)
    assert image.mode == "RGB"
    assert pixel(image, (8, 8)) == RED


@pytest.mark.parametrize(
    "fmt, suffix, kwargs",
    [("PNG", ".png", {}), ("BMP", ".bmp", {}), ("TIFF", ".tif", {}), ("WEBP", ".webp", {"lossless": True})],
)
def test_lossless_formats_round_trip(tmp_path, fmt, suffix, kwargs):
    rng = np.random.default_rng(1)
    array = rng.integers(0, 256, (24, 36, 3), dtype=np.uint8)
    path = tmp_path / f"x{suffix}"
    Image.fromarray(array).save(path, fmt, **kwargs)
    image = decode_image(path)
    assert image.mode == "RGB" and image.size == (36, 24)
    np.testing.assert_array_equal(np.asarray(image), array)


def test_lossy_webp(tmp_path):
    path = tmp_path / "x.webp"
    Image.new("RGB", (30, 20), (200, 40, 40)).save(path, "WEBP", quality=90)
    image = decode_image(path)
    assert image.size == (30, 20)
    assert_close(pixel(image, (15, 10)), (200, 40, 40))


def test_heic(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    photo = marked_photo(64, 48)
    path = tmp_path / "x.heic"
    pillow_heif.from_pillow(photo).save(path, quality=95)
    assert path.read_bytes()[4:12] == b"ftypheic"
    image = decode_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    assert_close(pixel(image, (6, 6)), RED, tol=30)
    assert_close(pixel(image, (32, 40)), BLUE, tol=30)


def test_truncated_heic_gives_one_short_line(tmp_path):
    pillow_heif = pytest.importorskip("pillow_heif")
    buffer = io.BytesIO()
    pillow_heif.from_pillow(marked_photo(64, 48)).save(buffer, quality=90)
    data = buffer.getvalue()
    with pytest.raises(ImageDecodeError) as info:
        decode_bytes(data[:-3])  # libheif's message for this spans two lines
    assert info.value.reason.startswith("corrupt image")
    assert "\n" not in info.value.reason and len(info.value.reason) < 200


def avif_bytes(image: Image.Image) -> bytes:
    if not features.check("avif"):
        pytest.skip("this Pillow cannot write AVIF (no libavif encoder)")
    return encode(image, "AVIF", quality=90)


def test_avif(tmp_path):
    path = tmp_path / "x.avif"
    path.write_bytes(avif_bytes(marked_photo(64, 48)))
    image = decode_image(path)
    assert image.mode == "RGB" and image.size == (64, 48)
    assert_close(pixel(image, (6, 6)), RED, tol=30)
    assert_close(pixel(image, (32, 40)), BLUE, tol=30)


def test_corrupt_avif_payload_is_a_decode_error():
    data = avif_bytes(marked_photo(16, 16))
    start = data.index(b"mdat") + 4
    corrupt = data[:start] + bytes(b ^ 0xFF for b in data[start:])
    with pytest.raises(ImageDecodeError) as info:  # the AVIF decoder raises RuntimeError
        decode_bytes(corrupt)
    assert info.value.reason


# --- decompression bombs ------------------------------------------------------------


def patched_png_header(width: int, height: int) -> bytes:
    """A small real PNG whose IHDR claims another size (with a valid CRC)."""
    data = bytearray(encode(Image.new("RGB", (8, 8), RED), "PNG"))
    assert data[12:16] == b"IHDR"
    ihdr = struct.pack(">II", width, height) + bytes(data[24:29])
    data[16:29] = ihdr
    data[29:33] = struct.pack(">I", zlib.crc32(b"IHDR" + ihdr))
    return bytes(data)


def one_bit_bomb(width: int, height: int) -> bytes:
    """A genuine all-black 1-bit PNG: a few kB on disk, width*height pixels once decoded."""
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor, chunks = zlib.compressobj(9), []
    rows_per_chunk = 1000
    for start in range(0, height, rows_per_chunk):
        chunks.append(compressor.compress(row * min(rows_per_chunk, height - start)))
    chunks.append(compressor.flush())
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + png_chunk(b"IHDR", ihdr) + png_chunk(b"IDAT", b"".join(chunks))
        + png_chunk(b"IEND", b"")
    )


def test_bomb_from_patched_header_is_refused(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(patched_png_header(20000, 20000))
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert "too large" in info.value.reason
    assert info.value.path == str(path)


def test_real_bomb_below_pillows_own_limit_is_refused():
    # 12000x12000 = 144 MP: over our 100 MP default, under Pillow's hard error (2x 89 MP),
    # so it is this module's check that has to refuse it.
    data = one_bit_bomb(12000, 12000)
    assert len(data) < 100_000
    assert 12000 * 12000 > DEFAULT_MAX_PIXELS
    with pytest.raises(ImageDecodeError) as info:
        decode_bytes(data)
    assert "too large" in info.value.reason and "12000x12000" in info.value.reason


def test_max_pixels_is_configurable():
    data = encode(Image.new("RGB", (64, 48), GREEN), "PNG")
    with pytest.raises(ImageDecodeError) as info:
        decode_bytes(data, max_pixels=64 * 48 - 1)
    assert "too large" in info.value.reason
    assert decode_bytes(data, max_pixels=64 * 48).size == (64, 48)
    assert decode_bytes(data, max_pixels=10_000).size == (64, 48)


def test_bomb_is_refused_from_the_header_without_allocating(tmp_path):
    path = tmp_path / "bomb.png"
    path.write_bytes(one_bit_bomb(12000, 12000))
    # A fresh process, so the peak resident size measures this decode alone. Decoding
    # this file would take 144 MB as 1-bit pixels and 432 MB as RGB.
    script = textwrap.dedent(
        f"""
        import resource, sys
        from clipforge.models.images import decode_image
        from clipforge.errors import ImageDecodeError
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image({str(path)!r})
        except ImageDecodeError as e:
            print(e.reason)
        after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        print((after - before) // 1024)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    reason, grown_mb = out.stdout.strip().splitlines()
    assert "too large" in reason
    assert int(grown_mb) < 32, f"peak memory grew by {grown_mb} MB"


# --- JPEG draft mode -----------------------------------------------------------------


@pytest.fixture(scope="module")
def big_jpeg(tmp_path_factory) -> Path:
    x = np.linspace(0, 255, 4000, dtype=np.float32)[None, :, None]
    y = np.linspace(0, 255, 3000, dtype=np.float32)[:, None, None]
    array = np.concatenate([np.broadcast_to(x, (3000, 4000, 1)), np.broadcast_to(y, (3000, 4000, 1)),
                            np.full((3000, 4000, 1), 128, np.float32)], axis=2).astype(np.uint8)
    path = tmp_path_factory.mktemp("draft") / "big.jpg"
    Image.fromarray(array).save(path, "JPEG", quality=85)
    return path


def test_jpeg_draft_decodes_near_the_target_size(big_jpeg):
    drafted = decode_image(big_jpeg, draft_size=(224, 224))
    assert drafted.mode == "RGB"
    assert drafted.size == (500, 375)  # 1/8 scale: the smallest that still covers 224x224
    full = decode_image(big_jpeg)
    assert full.size == (4000, 3000)
    # The drafted picture is the same picture.
    small = np.asarray(full.resize((500, 375), Image.Resampling.BOX), dtype=np.float32)
    assert np.abs(small - np.asarray(drafted, dtype=np.float32)).mean() < 4


@pytest.mark.parametrize("draft, expected", [((600, 600), (1000, 750)), ((1000, 400), (1000, 750)),
                                             ((2001, 10), (4000, 3000))])
def test_jpeg_draft_never_goes_below_the_requested_size(big_jpeg, draft, expected):
    image = decode_image(big_jpeg, draft_size=draft)
    assert image.size == expected
    assert image.size[0] >= draft[0] and image.size[1] >= draft[1]


def test_jpeg_draft_accounts_for_rotation(tmp_path, big_jpeg):
    with Image.open(big_jpeg) as raw:
        path = jpeg_with_orientation(tmp_path / "rotated.jpg", 6, raw.convert("RGB"))
    # Wanted upright: 1000 wide, 200 high. Stored sideways, that is 200 wide, 1000 high:
    # 1/2 scale. Ignoring the rotation would pick 1/4 and come back only 750 wide.
    image = decode_image(path, draft_size=(1000, 200))
    assert image.size == (1500, 2000)


def test_draft_size_is_ignored_for_other_formats(tmp_path):
    path = tmp_path / "x.png"
    Image.new("RGB", (900, 600), RED).save(path)
    assert decode_image(path, draft_size=(100, 100)).size == (900, 600)


# --- broken input --------------------------------------------------------------------


def half(data: bytes) -> bytes:
    return data[: len(data) // 2]


def noisy_photo() -> Image.Image:
    return Image.fromarray(np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8))


BROKEN = {
    "truncated.jpg": (lambda p: p.write_bytes(half(encode(noisy_photo(), "JPEG"))), "truncated image"),
    "truncated.png": (lambda p: p.write_bytes(half(encode(noisy_photo(), "PNG"))), "truncated image"),
    "header-only.jpg": (lambda p: p.write_bytes(encode(noisy_photo(), "JPEG")[:30]), "truncated image"),
    "empty.jpg": (lambda p: p.write_bytes(b""), "empty file"),
    "text.jpg": (lambda p: p.write_text("this is not a picture\n"), "not an image or unsupported format"),
    "random.png": (lambda p: p.write_bytes(np.random.default_rng(3).bytes(4096)), "not an image or unsupported format"),
    "x.jpg": (lambda p: p.mkdir(), "is a directory"),
    "missing.jpg": (lambda p: None, "file not found"),
}


@pytest.mark.parametrize("name", list(BROKEN))
def test_broken_files_raise_with_reason_and_path(tmp_path, name):
    make, reason = BROKEN[name]
    path = tmp_path / name
    make(path)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert info.value.reason == reason
    assert info.value.path == str(path)
    assert str(path) in str(info.value)


def test_decode_bytes_errors_have_no_path():
    with pytest.raises(ImageDecodeError) as info:
        decode_bytes(b"")
    assert info.value.reason == "empty file" and info.value.path is None


@pytest.mark.skipif(os.name != "posix" or os.geteuid() == 0, reason="root can read any file")
def test_unreadable_file(tmp_path):
    path = tmp_path / "locked.jpg"
    path.write_bytes(encode(noisy_photo(), "JPEG"))
    path.chmod(0)
    with pytest.raises(ImageDecodeError) as info:
        decode_image(path)
    assert info.value.reason == "permission denied"


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP", "BMP", "TIFF"])
def test_corrupted_bytes_never_escape_as_other_errors(fmt):
    """Flipped bytes anywhere in a file: a decode either succeeds or raises ImageDecodeError."""
    rng = np.random.default_rng(7)
    data = encode(noisy_photo().resize((40, 30)), fmt)
    for _ in range(40):
        corrupt = bytearray(data)
        for index in rng.integers(0, len(data), 4):
            corrupt[index] = int(rng.integers(0, 256))
        try:
            image = decode_bytes(bytes(corrupt))
        except ImageDecodeError as e:
            assert e.reason and "\n" not in e.reason
        else:
            assert image.mode == "RGB"
