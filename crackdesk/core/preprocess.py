"""The one preprocessing definition: how an image becomes a model input.

A model carries its `Preprocessing` in its ONNX metadata. Training, evaluation, the CLI and the GUI all
call these functions, so the numbers a model card reports are the numbers the app gets.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PIL import Image

from . import jsoncheck
from .jsoncheck import FieldError, shown

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
FIXED = {"layout": "NCHW", "channels": "RGB", "scale": "0..1"}  # the only values this version implements


@dataclass(frozen=True)
class Preprocessing:
    """Squash the whole RGB image to `input_size` (bilinear, antialiased), scale to 0..1,
    subtract `mean` and divide by `std` per channel; layout NCHW float32."""

    input_size: tuple[int, int]  # (height, width)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    resize: str = "bilinear"

    def to_dict(self) -> dict:
        return {
            "input_size": list(self.input_size),
            "mean": list(self.mean),
            "std": list(self.std),
            "resize": self.resize,
            **FIXED,
        }

    @classmethod
    def from_dict(cls, d: dict) -> "Preprocessing":
        """The metadata's `preprocessing` object, every key checked; FieldError (a ValueError) names the
        bad one, e.g. 'preprocessing.std[1]'. Ranges: mean is a channel mean of 0..1 data, so 0..1; std at
        least 0.001 (its inverse scales the input) and at most 1 (1 = no scaling)."""
        if not isinstance(d, dict):
            raise FieldError("preprocessing", f"must be a JSON object, got {shown(d)}")
        size = d.get("input_size")
        if jsoncheck.is_number(size):
            size = [size, size]  # a square input written as one number
        if not (isinstance(size, list) and len(size) == 2):
            raise FieldError("preprocessing.input_size", f"must be [height, width] in pixels, got {shown(size)}")
        height, width = (jsoncheck.integer(v, f"preprocessing.input_size[{i}]", 8, 4096) for i, v in enumerate(size))
        mean = jsoncheck.numbers(d.get("mean", list(IMAGENET_MEAN)), "preprocessing.mean", 3, 0.0, 1.0)
        std = jsoncheck.numbers(d.get("std", list(IMAGENET_STD)), "preprocessing.std", 3, 0.001, 1.0)
        resize = jsoncheck.one_of(d.get("resize", "bilinear"), "preprocessing.resize", ("bilinear",))
        for key, only in FIXED.items():  # what this version implements; anything else would be silently wrong
            jsoncheck.one_of(d.get(key, only), f"preprocessing.{key}", (only,))
        return cls((height, width), mean, std, resize)

    def resize_image(self, image: Image.Image) -> Image.Image:
        """RGB image of exactly the model's input size."""
        height, width = self.input_size
        if image.size == (width, height):
            return image
        return image.resize((width, height), Image.BILINEAR)

    def to_uint8(self, image: Image.Image) -> np.ndarray:
        """HWC uint8 array at the input size (what training caches before augmenting)."""
        return np.asarray(self.resize_image(image), dtype=np.uint8)

    def normalize(self, batch_uint8: np.ndarray) -> np.ndarray:
        """NHWC (or HWC) uint8 -> NCHW (or CHW) float32 model input: (x / 255 - mean) / std.
        Transposed while still uint8, then one conversion and one multiply-add per channel: 8x faster than
        five float passes, which matters because this runs for every image (equal within 1e-6)."""
        std = np.asarray(self.std, dtype=np.float32)
        scale = (1.0 / (255.0 * std)).reshape(3, 1, 1)
        shift = (-np.asarray(self.mean, dtype=np.float32) / std).reshape(3, 1, 1)
        x = np.moveaxis(batch_uint8, -1, -3).astype(np.float32, order="C")
        x *= scale
        x += shift
        return x

    def __call__(self, image: Image.Image) -> np.ndarray:
        """CHW float32 model input for one RGB image."""
        return self.normalize(self.to_uint8(image))
