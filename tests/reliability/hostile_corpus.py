"""A folder of hostile and odd files, each with what indexing must make of it.

Every entry is a name, a function that writes the file (or the link, pipe, folder...) and the
expected outcome: ``INDEXED``, or a piece of the reason it is skipped with. Nothing here may
crash or hang the indexer.
"""

from __future__ import annotations

import io
import os
import socket
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

INDEXED = "indexed"


@dataclass
class Case:
    name: str  # a file name, as str; ``raw_name`` wins where the name is not UTF-8
    build: Callable[[Path], None]
    expected: str
    raw_name: bytes | None = None

    def path(self, root: Path) -> Path:
        return Path(os.fsdecode(os.path.join(os.fsencode(root), self.raw_name))) if self.raw_name else root / self.name


def _rgb(size=(96, 72), seed=0) -> Image.Image:
    rng = np.random.default_rng(seed)
    return Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8))


def _saved(image_fn, fmt: str, **kwargs) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        image_fn().save(path, format=fmt, **kwargs)
    return build


def _bytes(data: bytes | Callable[[], bytes]) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data() if callable(data) else data)


def _jpeg(seed=0, size=(96, 72), **kwargs) -> bytes:
    out = io.BytesIO()
    _rgb(size, seed).save(out, format="JPEG", **kwargs)
    return out.getvalue()


def _frames(n=3, size=(48, 40)) -> list[Image.Image]:
    return [_rgb(size, seed) for seed in range(n)]


def _animated(fmt: str, **kwargs) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        first, *rest = _frames()
        first.save(path, format=fmt, save_all=True, append_images=rest, duration=100, loop=0, **kwargs)
    return build


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims a size and holds one compressed row: the shape of a decompression bomb."""
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
    row = zlib.compress(b"\0" * (width + 1))
    return b"\x89PNG\r\n\x1a\n" + header + _png_chunk(b"IDAT", row) + _png_chunk(b"IEND", b"")


def _thin_png(width: int, height: int) -> bytes:
    out = io.BytesIO()
    Image.new("L", (width, height), 200).save(out, format="PNG", optimize=True)
    return out.getvalue()


def _exif_garbage() -> bytes:
    """A JPEG whose EXIF block is random bytes behind a valid marker."""
    data = _jpeg(seed=5)
    garbage = b"Exif\0\0" + np.random.default_rng(0).integers(0, 256, 300, dtype=np.uint8).tobytes()
    segment = b"\xff\xe1" + struct.pack(">H", len(garbage) + 2) + garbage
    return data[:2] + segment + data[2:]


def _exif_rotated() -> bytes:
    exif = Image.Exif()
    exif[0x0112] = 6
    out = io.BytesIO()
    _rgb((80, 40), 6).save(out, format="JPEG", exif=exif.tobytes())
    return out.getvalue()


def _bad_crc_png() -> bytes:
    out = io.BytesIO()
    _rgb(seed=7).save(out, format="PNG")
    data = bytearray(out.getvalue())
    data[29] ^= 0xFF  # inside the IHDR CRC
    return bytes(data)


def _heif(fmt: str) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        import pillow_heif

        pillow_heif.register_heif_opener()
        if hasattr(pillow_heif, "register_avif_opener"):
            pillow_heif.register_avif_opener()
        _rgb((64, 48), 9).save(path, format=fmt)
    return build


def _truncated(build: Callable[[Path], None], keep: float = 0.5) -> Callable[[Path], None]:
    def wrapped(path: Path) -> None:
        build(path)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * keep)])
    return wrapped


def _symlink(target: str) -> Callable[[Path], None]:
    return lambda path: os.symlink(target, path)


def _loop(path: Path) -> None:
    os.symlink(path.name + ".other", path)
    os.symlink(path.name, str(path) + ".other")


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _socket(path: Path) -> None:
    # The socket file stays after the listening socket is closed; opening it still fails.
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.close()


def _folder_with_image(path: Path) -> None:
    path.mkdir()
    _rgb(seed=11).save(path / "inside.png")


def _sparse(size: int) -> Callable[[Path], None]:
    def build(path: Path) -> None:
        with open(path, "wb") as f:
            f.truncate(size)
    return build


def _random(n: int, seed: int) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


SVG = b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>'
PDF = b"%PDF-1.4\n1 0 obj<</Type/Catalog>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n"
HTML = b"<!doctype html><title>not a picture</title>"

CASES: list[Case] = [
    # Odd but sound images: indexed.
    Case("plain.jpg", _bytes(lambda: _jpeg(0)), INDEXED),
    Case("cmyk.jpg", _saved(lambda: _rgb(seed=1).convert("CMYK"), "JPEG"), INDEXED),
    Case("gray16.png", _saved(lambda: Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 20).astype(np.uint16)), "PNG"), INDEXED),
    Case("gray16.tif", _saved(lambda: Image.fromarray((np.arange(64 * 48).reshape(48, 64) * 9).astype(np.uint16)), "TIFF"), INDEXED),
    Case("float.tif", _saved(lambda: Image.fromarray(np.linspace(-3, 9, 64 * 48, dtype=np.float32).reshape(48, 64)), "TIFF"), INDEXED),
    Case("palette-alpha.png", _saved(lambda: _rgb(seed=2).convert("P", palette=Image.Palette.ADAPTIVE), "PNG", transparency=0), INDEXED),
    Case("gray-alpha.png", _saved(lambda: _rgb(seed=3).convert("LA"), "PNG"), INDEXED),
    Case("rgba.webp", _saved(lambda: _rgb(seed=4).convert("RGBA"), "WEBP", lossless=True), INDEXED),
    Case("bilevel.png", _saved(lambda: _rgb(seed=5).convert("1"), "PNG"), INDEXED),
    Case("grey.jpg", _saved(lambda: _rgb(seed=6).convert("L"), "JPEG"), INDEXED),
    Case("progressive.jpg", _bytes(lambda: _jpeg(7, progressive=True)), INDEXED),
    Case("bitmap.bmp", _saved(lambda: _rgb(seed=8), "BMP"), INDEXED),
    Case("animated.gif", _animated("GIF"), INDEXED),
    Case("animated.png", _animated("PNG"), INDEXED),
    Case("animated.webp", _animated("WEBP"), INDEXED),
    Case("multipage.tiff", _animated("TIFF"), INDEXED),
    Case("broken-exif.jpg", _bytes(_exif_garbage), INDEXED),
    Case("rotated-exif.jpg", _bytes(_exif_rotated), INDEXED),
    Case("photo.heic", _heif("HEIF"), INDEXED),
    Case("photo.avif", _heif("AVIF"), INDEXED),
    Case("jpeg-named.png", _bytes(lambda: _jpeg(12)), INDEXED),
    Case("one-pixel.png", _saved(lambda: Image.new("RGB", (1, 1), (9, 99, 199)), "PNG"), INDEXED),
    Case("thin-1x100000.png", _bytes(lambda: _thin_png(1, 100_000)), INDEXED),
    Case("thin-100000x1.png", _bytes(lambda: _thin_png(100_000, 1)), INDEXED),
    Case("thin-1x2000000.png", _bytes(lambda: _thin_png(1, 2_000_000)), INDEXED),
    # Between Pillow's own warning threshold (89 MP) and the default limit (100 MP).
    Case("large-90mp.png", _bytes(lambda: _thin_png(9500, 9500)), INDEXED),
    Case("name with spaces.jpg", _bytes(lambda: _jpeg(13)), INDEXED),
    Case("ünïcödé 日本 😀.jpg", _bytes(lambda: _jpeg(14)), INDEXED),
    Case("-leading-dash.jpg", _bytes(lambda: _jpeg(15)), INDEXED),
    Case("new\nline.jpg", _bytes(lambda: _jpeg(16)), INDEXED),
    Case("per%cent_under_score.jpg", _bytes(lambda: _jpeg(17)), INDEXED),
    Case("UPPER.JPEG", _bytes(lambda: _jpeg(18)), INDEXED),
    Case("l" * 250 + ".jpg", _bytes(lambda: _jpeg(19)), INDEXED),
    Case("latin1-name.jpg", _bytes(lambda: _jpeg(20)), INDEXED, raw_name=b"caf\xe9-latin1.jpg"),
    Case("invalid-utf8.png", _saved(lambda: _rgb(seed=21), "PNG"), INDEXED, raw_name=b"\xff\xfe\x80.png"),
    Case("x.jpg", _folder_with_image, INDEXED),  # a folder: walked into, its image indexed
    Case("link-to-image.jpg", _symlink("plain.jpg"), INDEXED),
    # Broken, hostile or not images at all: skipped with a reason.
    Case("empty.jpg", _bytes(b""), "empty file"),
    Case("truncated.jpg", _bytes(lambda: _jpeg(22, size=(400, 300))[:2000]), "truncated"),
    Case("truncated.png", _truncated(_saved(lambda: _rgb((200, 150), 23), "PNG")), "truncated"),
    Case("truncated.heic", _truncated(_heif("HEIF"), 0.4), "image"),
    Case("bad-crc.png", _bytes(_bad_crc_png), "not an image"),
    Case("random.jpg", _bytes(lambda: _random(5000, 1)), "not an image"),
    Case("random.png", _bytes(lambda: b"\x89PNG\r\n\x1a\n" + _random(3000, 2)), "image"),
    Case("random.tiff", _bytes(lambda: b"II*\0" + _random(3000, 3)), "image"),
    Case("random.gif", _bytes(lambda: b"GIF89a" + _random(100, 4)), "image"),
    Case("bomb.png", _bytes(lambda: _png_header_only(60_000, 60_000)), "too large"),
    Case("bomb-wide.png", _bytes(lambda: _png_header_only(2_000_000, 100)), "too large"),
    Case("svg.jpg", _bytes(SVG), "not an image"),
    Case("pdf.jpg", _bytes(PDF), "not an image"),
    Case("html.png", _bytes(HTML), "not an image"),
    Case("fifo.jpg", _fifo, "not a regular file (a named pipe)"),
    Case("socket.jpg", _socket, "not a regular file (a socket)"),
    Case("zero.jpg", _symlink("/dev/zero"), "not a regular file (a character device)"),
    Case("urandom.png", _symlink("/dev/urandom"), "not a regular file (a character device)"),
    Case("dangling.jpg", _symlink("does-not-exist.jpg"), "file not found"),
    Case("loop.jpg", _loop, "symbolic links"),
    Case("sparse-2gb.jpg", _sparse(2 << 30), "file too large"),
]


def build(root: Path) -> list[Case]:
    root.mkdir(parents=True, exist_ok=True)
    for case in CASES:
        case.build(case.path(root))
    return CASES
