"""Image preprocessing that matches a checkpoint's image processor.

The Hugging Face processors are correct but slow and not built to run in a pool of decode
workers. ``ImagePreprocess`` reads the same settings (resize rule, crop, mean, std,
resampling filter) into a small picklable object that turns a decoded PIL image into the
exact float32 CHW array the model expects. A test checks it against the HF processor.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..data.images import to_rgb


@dataclass(frozen=True)
class ImagePreprocess:
    # "shortest_edge": scale so the short side is `resize[0]`, keeping the aspect ratio (CLIP).
    # "exact": scale to exactly `resize` = (height, width), ignoring the aspect ratio (SigLIP).
    resize_mode: str
    resize: tuple[int, int]
    crop: tuple[int, int] | None  # (height, width) centre crop after resizing, or None
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    resample: int = Image.Resampling.BICUBIC
    rescale: float = 1 / 255

    @property
    def output_size(self) -> tuple[int, int]:
        """(height, width) of the arrays this produces."""
        return self.crop if self.crop else self.resize

    @property
    def draft_size(self) -> tuple[int, int]:
        """The smallest (width, height) a JPEG may be draft-decoded to without losing detail."""
        h, w = self.resize if self.resize_mode == "exact" else (self.resize[0], self.resize[0])
        return (w, h)

    @classmethod
    def from_hf(cls, processor) -> "ImagePreprocess":
        size = processor.size
        get = size.get if isinstance(size, dict) else lambda key, default=None: getattr(size, key, default)
        if get("shortest_edge"):
            mode, resize = "shortest_edge", (int(get("shortest_edge")),) * 2
        elif get("height") and get("width"):
            mode, resize = "exact", (int(get("height")), int(get("width")))
        else:
            raise ValueError(f"unsupported image processor size setting: {size}")
        crop = None
        if getattr(processor, "do_center_crop", False) and processor.crop_size is not None:
            cs = processor.crop_size
            cget = cs.get if isinstance(cs, dict) else lambda key, default=None: getattr(cs, key, default)
            crop = (int(cget("height")), int(cget("width")))
        resample = processor.resample if processor.resample is not None else Image.Resampling.BICUBIC
        return cls(
            resize_mode=mode,
            resize=resize,
            crop=crop,
            mean=tuple(float(x) for x in processor.image_mean),
            std=tuple(float(x) for x in processor.image_std),
            resample=int(resample),
            rescale=float(processor.rescale_factor) if getattr(processor, "do_rescale", True) else 1.0,
        )

    def _resized(self, image: Image.Image) -> Image.Image:
        if self.resize_mode == "exact":
            h, w = self.resize
            return image.resize((w, h), resample=self.resample)
        short = self.resize[0]
        w, h = image.size
        if w <= h:
            new_w, new_h = short, int(short * h / w)
        else:
            new_w, new_h = int(short * w / h), short
        if (new_w, new_h) == (w, h):
            return image
        return image.resize((new_w, new_h), resample=self.resample)

    def _cropped(self, image: Image.Image) -> Image.Image:
        if not self.crop:
            return image
        ch, cw = self.crop
        w, h = image.size
        top, left = (h - ch) // 2, (w - cw) // 2
        # PIL pads with black when the box reaches outside a too-small image.
        return image.crop((left, top, left + cw, top + ch))

    def resize_crop(self, image: Image.Image) -> np.ndarray:
        """Decoded PIL image -> uint8 HWC array at the model's input size.

        Decode workers stop here: uint8 is a quarter of the bytes of float32 to send back.
        """
        # Same conversion as decode_image, so a PIL image passed in directly (an RGBA PNG,
        # say) gives the vector its file would: convert("RGB") would put alpha on black.
        image = to_rgb(image)
        return np.asarray(self._cropped(self._resized(image)), dtype=np.uint8)

    def normalize(self, batch: np.ndarray) -> np.ndarray:
        """uint8 NHWC batch -> float32 NCHW, rescaled and normalised as the checkpoint expects."""
        array = batch.astype(np.float32) * np.float32(self.rescale)
        array -= np.asarray(self.mean, dtype=np.float32)
        array /= np.asarray(self.std, dtype=np.float32)
        return np.ascontiguousarray(array.transpose(0, 3, 1, 2))

    def __call__(self, image: Image.Image) -> np.ndarray:
        """Decoded PIL image -> float32 array of shape (3, H, W)."""
        return self.normalize(self.resize_crop(image)[None])[0]
