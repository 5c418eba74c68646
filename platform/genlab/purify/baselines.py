"""Baseline purifiers: `none` (identity), `jpeg` (compression at a quality) and `gaussian_noise` (sigma)."""

from __future__ import annotations

import io
from typing import ClassVar, Literal

import numpy as np
from PIL import Image
from pydantic import Field

from genlab.purify.base import Purifier, PurifierSettings, row_generators, to_uint8


class NoneSettings(PurifierSettings):
    """No defense: the training set is used as it is."""

    name: Literal["none"] = "none"


class JpegSettings(PurifierSettings):
    """JPEG compression; a list of qualities sweeps them."""

    sweepable: ClassVar[tuple[str, ...]] = ("quality",)
    name: Literal["jpeg"] = "jpeg"
    quality: int | list[int] = Field(75)  # JPEG quality 1..95 (lower = stronger)

    def label(self, steps: int = 0) -> str:
        return f"jpeg-q{self.quality}"


class GaussianNoiseSettings(PurifierSettings):
    """Additive Gaussian noise; a list of sigmas sweeps them."""

    sweepable: ClassVar[tuple[str, ...]] = ("sigma",)
    name: Literal["gaussian_noise"] = "gaussian_noise"
    sigma: float | list[float] = Field(16.0)  # noise std, pixel units (of 255)

    def label(self, steps: int = 0) -> str:
        return f"noise-s{self.sigma:g}"


class IdentityPurifier(Purifier):
    """Returns the images unchanged."""

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        return {0: images.copy()}


class JpegPurifier(Purifier):
    """JPEG-compresses and decodes each image at a fixed quality (deterministic)."""

    def __init__(self, quality: int) -> None:
        if not 1 <= quality <= 95:
            raise ValueError(f"jpeg quality must be in 1..95, got {quality}")
        self.quality = quality

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        out = np.empty_like(images)
        for i, image in enumerate(images):
            grey = image.shape[2] == 1
            buffer = io.BytesIO()
            Image.fromarray(image[..., 0] if grey else image).save(buffer, format="JPEG", quality=self.quality)
            decoded = np.asarray(Image.open(io.BytesIO(buffer.getvalue())))
            out[i] = decoded[..., None] if grey else decoded
        return {0: out}


class GaussianNoisePurifier(Purifier):
    """Adds N(0, sigma^2) noise per pixel (sigma in pixel units), seeded per row."""

    def __init__(self, sigma: float, seed: int) -> None:
        if not sigma >= 0:
            raise ValueError(f"gaussian_noise sigma must be >= 0, got {sigma}")
        self.sigma, self.seed = sigma, seed

    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        noise = np.stack([rng.standard_normal(images.shape[1:], dtype=np.float32)
                          for rng in row_generators(self.seed, row_ids)]) if len(images) else 0.0
        return {0: to_uint8(images.astype(np.float32) + self.sigma * noise)}
