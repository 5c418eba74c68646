"""Conversions of image arrays: uint8 NHWC pixels (0..255) <-> float NCHW tensors in a value range, and
one dataset's images -> another dataset's format (size and channel count).

The value ranges in use: SIGNED [-1, 1] for the generative models (x = pixels / 127.5 - 1, the spec's
per-channel (x01 - 0.5) / 0.5), UNIT [0, 1] for the VAEs, PIXEL [0, 255] for classifiers and attacks.
Back to pixels: clamp to 0..255 and round, so every purified or generated image is 8-bit quantised as
in the papers' pipeline.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.datasets import resize_images
from genlab.errors import ConfigError

ValueRange = tuple[float, float]
SIGNED: ValueRange = (-1.0, 1.0)  # generative models (EBM, DDPM)
UNIT: ValueRange = (0.0, 1.0)  # VAEs (Bernoulli pixel likelihood)
PIXEL: ValueRange = (0.0, 255.0)  # classifiers and attacks (normalisation inside the network)


def to_tensor(images: np.ndarray, value_range: ValueRange = SIGNED, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return uint8 NHWC images as float32 NCHW tensors on `device`, 0 -> value_range[0] and 255 -> value_range[1]."""
    low, high = value_range
    x = torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float()
    return x / (255.0 / (high - low)) + low


def to_pixels(x: torch.Tensor, value_range: ValueRange = SIGNED) -> np.ndarray:
    """Return float NCHW tensors in `value_range` as uint8 NHWC numpy pixels (0..255, clamped and rounded)."""
    low, high = value_range
    scaled = (x.detach().float() - low) * (255.0 / (high - low))
    return scaled.clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


def match_format(images: np.ndarray, shape: tuple[int, int, int]) -> np.ndarray:
    """Return uint8 NHWC images resized to shape's H x W and converted to its channel count (grey <-> RGB).

    Raises `ConfigError` for a non-square target size or a channel conversion other than grey <-> any.
    """
    h, w, c = shape
    if images.shape[1:3] != (h, w):
        if h != w:
            raise ConfigError(f"cannot resize training images to non-square {h}x{w}")
        images = resize_images(images, h)
    if images.shape[3] == c:
        return images
    if c == 1:
        return images.astype(np.float32).mean(axis=3, keepdims=True).round().astype(np.uint8)
    if images.shape[3] == 1:
        return np.repeat(images, c, axis=3)
    raise ConfigError(f"cannot convert {images.shape[3]}-channel training images to {c} channels")
