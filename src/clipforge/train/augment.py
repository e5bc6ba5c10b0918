"""Training-time image augmentation in PIL and numpy: random resized crop, optional
horizontal flip, light colour jitter.

Every random choice comes from the generator passed in, which the dataset derives from
(seed, epoch, index): an augmented sample is the same whichever worker makes it and
whether or not the run was resumed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

from ..models.preprocess import ImagePreprocess

_RATIO = (3 / 4, 4 / 3)
_GRAY = np.asarray([0.299, 0.587, 0.114], dtype=np.float32)  # ITU-R 601 luma, as PIL uses


@dataclass(frozen=True)
class TrainTransform:
    preprocess: ImagePreprocess  # the checkpoint's eval-time preprocessing: output size, filter
    crop_scale: float = 0.8  # a crop keeps at least this fraction of the area; 1 = no random crop
    flip: bool = False  # off by default: a flipped "dog left of a cat" has a wrong caption
    jitter: float = 0.1

    def __call__(self, image: Image.Image, rng: np.random.Generator) -> np.ndarray:
        """Decoded RGB image -> uint8 HWC array at the model's input size."""
        if self.crop_scale < 1.0:
            array = np.asarray(self._random_resized_crop(image, rng), dtype=np.uint8)
        else:
            array = self.preprocess.resize_crop(image)
        if self.flip and rng.random() < 0.5:
            array = array[:, ::-1]
        if self.jitter > 0:
            array = colour_jitter(array, rng, self.jitter)
        return np.ascontiguousarray(array)

    def _crop_box(self, width: int, height: int, rng: np.random.Generator) -> tuple[float, float, float, float]:
        area = width * height
        for _ in range(10):  # torchvision's rejection sampling, then its centre-crop fallback
            target = area * rng.uniform(self.crop_scale, 1.0)
            ratio = math.exp(rng.uniform(math.log(_RATIO[0]), math.log(_RATIO[1])))
            w, h = math.sqrt(target * ratio), math.sqrt(target / ratio)
            if w <= width and h <= height:
                left, top = rng.uniform(0, width - w), rng.uniform(0, height - h)
                return (left, top, left + w, top + h)
        side = min(width, height)
        left, top = (width - side) / 2, (height - side) / 2
        return (left, top, left + side, top + side)

    def _random_resized_crop(self, image: Image.Image, rng: np.random.Generator) -> Image.Image:
        out_h, out_w = self.preprocess.output_size
        box = self._crop_box(*image.size, rng)
        # resize() with a box crops and scales in one resampling pass.
        return image.resize((out_w, out_h), resample=self.preprocess.resample, box=box)


def colour_jitter(array: np.ndarray, rng: np.random.Generator, strength: float) -> np.ndarray:
    """Brightness, contrast and saturation, each scaled by a factor in [1-s, 1+s]."""
    brightness, contrast, saturation = rng.uniform(1 - strength, 1 + strength, 3)
    x = array.astype(np.float32) * brightness
    gray = x @ _GRAY
    x = (x - gray.mean()) * contrast + gray.mean()
    gray = (x @ _GRAY)[..., None]
    x = gray + (x - gray) * saturation
    return np.clip(x + 0.5, 0, 255).astype(np.uint8)
