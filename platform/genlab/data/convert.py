"""Conversions of image arrays: uint8 NHWC pixels (0..255) <-> the generative models' float NCHW tensors
in [-1, 1], and one dataset's images -> another dataset's format (size and channel count).

x = pixels / 127.5 - 1 (the spec's per-channel (x01 - 0.5) / 0.5); back: clamp((x + 1) * 127.5, 0, 255),
rounded, so every purified or generated image is 8-bit quantised as in the papers' pipeline.
"""

from __future__ import annotations

import numpy as np
import torch

from genlab.data.datasets import resize_images
from genlab.errors import ConfigError


def to_unit_range(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return uint8 NHWC images as float32 NCHW tensors in [-1, 1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """Return [-1, 1] NCHW tensors as uint8 NHWC numpy pixels (clamped to 0..255 and rounded)."""
    return ((x.detach().float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()


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
