"""Base images for LAVAE (digits or MNIST) and the paired augmentation sets built from them.

A `PairedSet` for a pair (a1, a2) holds four index-aligned image tensors: `orig = x`,
`first = a1(x)`, `second = a2(x)`, `compose = a2(a1(x))` (spec §3.2), all float
`[N, 1, H, W]` in [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from pydantic import Field, field_validator

from genlab.augment.augmentations import augment
from genlab.config import StrictModel
from genlab.data import DatasetConfig, ImageSet, load_dataset
from genlab.errors import DatasetMissingError
from genlab.runtime import seeded_generator

MNIST_FILES = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")


class AugmentDataConfig(StrictModel):
    """Which grey-scale images LAVAE is trained and tested on."""

    name: Literal["digits", "mnist"] = "digits"  # digits (embedded, scikit-learn) or mnist (local torchvision copy)
    root: str = "data"  # mnist: directory holding MNIST/raw/ (torchvision's layout)
    image_size: int = Field(16, ge=8, le=64)  # digits: side length in pixels (a multiple of 4); MNIST keeps 28
    max_train: int | None = Field(None, ge=16)  # keep only the first N training images (quick runs)
    max_test: int | None = Field(None, ge=16)  # keep only the first N test images
    seed: int = Field(0, ge=0)  # digits: train/test split seed

    @field_validator("image_size")
    @classmethod
    def _multiple_of_four(cls, value: int) -> int:
        if value % 4:
            raise ValueError(f"must be a multiple of 4 (the encoder halves the side twice), got {value}")
        return value


def load_mnist(root: str | Path) -> tuple[ImageSet, ImageSet]:
    """Return MNIST (train 60k, test 10k) as uint8 [N,28,28,1] ImageSets from a local torchvision copy.

    Raises `DatasetMissingError` naming the expected files when `root/MNIST/raw` lacks them or
    they cannot be read.
    """
    from torchvision.datasets import MNIST

    raw = Path(root) / "MNIST" / "raw"
    missing = [name for name in MNIST_FILES if not (raw / name).is_file()]
    if missing:
        raise DatasetMissingError(f"MNIST not found at {raw}: missing {', '.join(missing)} (torchvision's layout; "
                                  f"gunzip the .gz downloads there, or set data.root)")
    parts = []
    for train in (True, False):
        try:
            dataset = MNIST(str(root), train=train, download=False)
        except (RuntimeError, ValueError, OSError) as exc:
            raise DatasetMissingError(f"MNIST under {raw} is unusable: {exc}") from exc
        parts.append(ImageSet(dataset.data.numpy()[..., None].astype(np.uint8),
                              dataset.targets.numpy().astype(np.int64), [str(d) for d in range(10)]))
    return parts[0], parts[1]


def load_images(cfg: AugmentDataConfig) -> tuple[ImageSet, ImageSet]:
    """Return (train, test) grey-scale ImageSets (uint8 [N,H,W,1]), cut to max_train / max_test."""
    if cfg.name == "mnist":
        train, test = load_mnist(cfg.root)
    else:
        train, test = load_dataset(DatasetConfig(name="digits", image_size=cfg.image_size, seed=cfg.seed))
    if cfg.max_train is not None:
        train = train.subset(np.arange(min(cfg.max_train, len(train))))
    if cfg.max_test is not None:
        test = test.subset(np.arange(min(cfg.max_test, len(test))))
    return train, test


@dataclass(frozen=True)
class PairedSet:
    """Index-aligned x, a1(x), a2(x), a2(a1(x)) for one augmentation pair; float [N,1,H,W] in [0,1]."""

    pair: tuple[str, str]
    orig: torch.Tensor
    first: torch.Tensor
    second: torch.Tensor
    compose: torch.Tensor

    def __len__(self) -> int:
        return len(self.orig)

    def targets(self) -> dict[str, torch.Tensor]:
        """Return the four image sets keyed `orig`, `<a1>`, `<a2>`, `compose`."""
        return {"orig": self.orig, self.pair[0]: self.first, self.pair[1]: self.second, "compose": self.compose}


def paired_set(images: torch.Tensor, pair: tuple[str, str], *, seed: int, split: str) -> PairedSet:
    """Return the PairedSet of `images` for `pair`; random parameters are seeded by (seed, pair, split)."""
    generator = seeded_generator(seed, *pair, split)
    first = augment(images, pair[0], generator)
    second = augment(images, pair[1], generator)
    return PairedSet(pair, images, first, second, augment(first, pair[1], generator))
