"""Safe image decoding.

Every image that reaches a model goes through ``decode_image``. It returns an upright RGB
image or raises ``ImageDecodeError`` with a short reason that a collection stores. It never
lets a hostile or broken file take the process down: decompression bombs are refused from
the header alone, truncated files are reported, and odd modes (palette, CMYK, 16-bit,
transparency) are converted the way a person would see the picture.

This module must not import torch: decode workers import it.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
from PIL import Image, ImageFile, ImageOps, UnidentifiedImageError

from ..errors import ImageDecodeError

try:  # HEIC/HEIF and, in older Pillow, AVIF come from the optional pillow-heif.
    import pillow_heif

    pillow_heif.register_heif_opener()
    if hasattr(pillow_heif, "register_avif_opener"):
        pillow_heif.register_avif_opener()
except ImportError:  # pragma: no cover - depends on the install
    pillow_heif = None

# A truncated file must be reported, not padded with grey.
ImageFile.LOAD_TRUNCATED_IMAGES = False
# Pillow warns about files it reads anyway: a size near its bomb threshold (the pixel limit
# here decides that), a corrupt EXIF block, a tag past the end. On a user's terminal these
# are noise, one line per file; a file that fails is reported with its reason instead.
warnings.filterwarnings("ignore", module=r"PIL\.")

DEFAULT_MAX_PIXELS = 100_000_000  # 100 MP: above any camera, far below a bomb's billions
# Larger than a 100 MP 16-bit TIFF; bounds what one read may hold in memory.
DEFAULT_MAX_FILE_BYTES = 1 << 30
IMAGE_EXTENSIONS = frozenset(
    ".jpg .jpeg .jpe .png .gif .webp .bmp .tif .tiff .heic .heif .avif".split()
)
_BACKGROUND = (255, 255, 255)  # transparent areas are shown on white, as viewers do
_ROTATED_ORIENTATIONS = {5, 6, 7, 8}


def is_image_path(path: str | Path) -> bool:
    return os.path.splitext(str(path))[1].lower() in IMAGE_EXTENSIONS


def read_bytes(path: str | Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> bytes:
    """Read a whole regular file of at most ``max_bytes``, mapping OS errors to short reasons."""
    return read_file(path, max_bytes)[0]


def read_file(path: str | Path, max_bytes: int = DEFAULT_MAX_FILE_BYTES) -> tuple[bytes, os.stat_result]:
    """(contents, the file's status when it was read) of a regular file of at most ``max_bytes``.

    The file is opened without blocking and checked before anything is read: a named pipe
    would block the read forever and a device (a link to /dev/zero) never ends.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        raise ImageDecodeError("file not found", str(path)) from None
    except IsADirectoryError:
        raise ImageDecodeError("is a directory", str(path)) from None
    except PermissionError:
        raise ImageDecodeError("permission denied", str(path)) from None
    except OSError as e:  # a socket cannot even be opened
        raise ImageDecodeError(_special_file(path) or f"cannot read file ({e.strerror or e})", str(path)) from None
    info = os.fstat(fd)
    problem = None
    if stat.S_ISDIR(info.st_mode):
        problem = "is a directory"
    elif not stat.S_ISREG(info.st_mode):
        problem = f"not a regular file ({file_kind(info.st_mode)})"
    elif info.st_size > max_bytes:
        problem = _too_large(info.st_size, max_bytes)
    if problem:
        os.close(fd)
        raise ImageDecodeError(problem, str(path))
    with os.fdopen(fd, "rb") as f:
        try:
            data = f.read(max_bytes + 1)
        except OSError as e:
            raise ImageDecodeError(f"cannot read file ({e.strerror or e})", str(path)) from None
    if len(data) > max_bytes:  # it grew after the check
        raise ImageDecodeError(_too_large(len(data), max_bytes, at_least=True), str(path))
    return data, info


def _too_large(size: int, max_bytes: int, at_least: bool = False) -> str:
    return f"file too large ({'over ' if at_least else ''}{size} bytes > the {max_bytes} byte limit)"


def _special_file(path: str | Path) -> str | None:
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return None
    return None if stat.S_ISREG(mode) or stat.S_ISDIR(mode) else f"not a regular file ({file_kind(mode)})"


def file_kind(mode: int) -> str:
    """What a file that is not a regular one is, for a reason a person reads."""
    for test, kind in ((stat.S_ISFIFO, "a named pipe"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return kind
    return "a special file"


# Pillow's AVIF plugin and libheif report broken files as RuntimeError, not OSError.
_DECODER_ERRORS = (OSError, ValueError, SyntaxError, EOFError, RuntimeError)


def _reason(error: Exception) -> str:
    """A short one-line reason: decoders word truncation variously and libheif spans lines."""
    message = str(error).strip()
    if "truncated" in message.lower():
        return "truncated image"
    return f"corrupt image ({message.splitlines()[0].strip() if message else type(error).__name__})"


def _open_checked(data: bytes, max_pixels: int) -> Image.Image:
    if not data:
        raise ImageDecodeError("empty file")
    try:
        image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError:
        raise ImageDecodeError("image too large (decompression bomb)") from None
    except UnidentifiedImageError:
        raise ImageDecodeError("not an image or unsupported format") from None
    except _DECODER_ERRORS as e:
        raise ImageDecodeError(_reason(e)) from None
    width, height = image.size
    if width <= 0 or height <= 0:
        raise ImageDecodeError("image has no pixels")
    if width * height > max_pixels:
        raise ImageDecodeError(
            f"image too large ({width}x{height} = {width * height} pixels > {max_pixels})"
        )
    return image


def _apply_draft(image: Image.Image, draft_size: tuple[int, int]) -> None:
    # JPEG draft mode decodes at 1/2, 1/4 or 1/8 scale straight from the DCT, never below
    # the requested size: the single largest saving in the whole pipeline for big photos.
    w, h = draft_size
    try:
        orientation = image.getexif().get(0x0112)
    except Exception:  # a broken EXIF block must not stop the decode
        orientation = None
    if orientation in _ROTATED_ORIENTATIONS:
        w, h = h, w
    image.draft("RGB", (w, h))


def to_rgb(image: Image.Image) -> Image.Image:
    """Any decoded mode -> RGB as a person sees it: alpha on white, 16-bit scaled, not clipped."""
    mode = image.mode
    if mode == "RGB":
        return image
    if mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        # Pillow's convert("RGB") clips 16-bit and float values at 255; scale them instead.
        array = np.asarray(image, dtype=np.float64)
        high = 65535.0 if mode.startswith("I;16") or array.max(initial=0) > 255 else 255.0
        if mode == "F":
            low, high = float(array.min(initial=0)), float(array.max(initial=1))
            array = (array - low) / max(high - low, 1e-12) * 255.0
        else:
            array = array / high * 255.0
        gray = Image.fromarray(np.clip(array + 0.5, 0, 255).astype(np.uint8), "L")
        return gray.convert("RGB")
    if mode == "P":
        image = image.convert("RGBA") if "transparency" in image.info else image.convert("RGB")
        mode = image.mode
    if mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, _BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")  # L, 1, CMYK, YCbCr, LAB, HSV


def decode_bytes(
    data: bytes,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an encoded image held in memory to an upright RGB image.

    ``draft_size`` is the (width, height) the caller will resize to; JPEGs are then decoded
    at the smallest DCT scale that still covers it. The first frame of an animation is used.
    """
    image = _open_checked(data, max_pixels)
    try:
        if draft_size and image.format == "JPEG":
            _apply_draft(image, draft_size)
        image.load()
        image = ImageOps.exif_transpose(image) or image
        return to_rgb(image)
    except ImageDecodeError:
        raise
    except _DECODER_ERRORS as e:
        raise ImageDecodeError(_reason(e)) from None
    except Image.DecompressionBombError:
        raise ImageDecodeError("image too large (decompression bomb)") from None


def decode_image(
    path: str | Path,
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    draft_size: tuple[int, int] | None = None,
) -> Image.Image:
    """Decode an image file. Errors carry the path and a short reason."""
    data = read_bytes(path)
    try:
        return decode_bytes(data, max_pixels=max_pixels, draft_size=draft_size)
    except ImageDecodeError as e:
        raise ImageDecodeError(e.reason, str(path)) from None
