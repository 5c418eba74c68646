"""Conversions between uint8 NHWC pixel arrays (0..255) and the generative models' float NCHW tensors in [-1, 1].

x = pixels / 127.5 - 1 (the spec's per-channel (x01 - 0.5) / 0.5); back: clamp((x + 1) * 127.5, 0, 255),
rounded, so every purified or generated image is 8-bit quantised as in the papers' pipeline.
"""

from __future__ import annotations

import numpy as np
import torch


def to_unit_range(images: np.ndarray, device: torch.device | str = "cpu") -> torch.Tensor:
    """Return uint8 NHWC images as float32 NCHW tensors in [-1, 1] on `device`."""
    return torch.from_numpy(np.ascontiguousarray(images)).to(device).permute(0, 3, 1, 2).float() / 127.5 - 1.0


def to_pixels(x: torch.Tensor) -> np.ndarray:
    """Return [-1, 1] NCHW tensors as uint8 NHWC numpy pixels (clamped to 0..255 and rounded)."""
    return ((x.detach().float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8).permute(0, 2, 3, 1).cpu().numpy()
