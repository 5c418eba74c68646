"""The purifier interface (the transform Psi of PureGen) and what every purifier config shares.

Value range, once for all of genlab: a purifier takes **uint8 NHWC pixel arrays (0..255)**
and returns uint8 NHWC arrays of the same shape, one per requested step count. Generative
purifiers work internally on floats in [-1, 1] (x / 127.5 - 1) and quantise back to 8 bits,
as the papers' pipeline does. Randomness is drawn per row from `(seed, row_id)`, so a row
gets the same transform whatever batch or actor it lands in.
"""

from __future__ import annotations

import itertools
from abc import ABC, abstractmethod
from typing import Any, ClassVar, Self

import numpy as np

from genlab.config import StrictModel


class Purifier(ABC):
    """A stochastic transform of training images, applied before a classifier is trained."""

    @abstractmethod
    def purify(self, images: np.ndarray, row_ids: np.ndarray) -> dict[int, np.ndarray]:
        """Return `{step_count: uint8 [N,H,W,C]}` for uint8 NHWC `images` (rows aligned with input)."""


class PurifierSettings(StrictModel):
    """Base of purifier configs. A list value in a `sweepable` field expands into one setting per value."""

    sweepable: ClassVar[tuple[str, ...]] = ()
    name: str

    def settings(self) -> list[Self]:
        """Return one concrete config per combination of the list-valued sweepable fields."""
        grid = {key: getattr(self, key) for key in self.sweepable if isinstance(getattr(self, key), list)}
        if not grid:
            return [self]
        return [self.model_copy(update=dict(zip(grid, values))) for values in itertools.product(*grid.values())]

    def snapshot_steps(self) -> list[int]:
        """Return the step counts one run of this purifier yields (a single 0 for one-shot transforms)."""
        return [0]

    def weights_fingerprint(self) -> str | None:
        """Return a digest of the model weights this setting uses (cache keys), or None for model-free transforms."""
        return None

    def params(self) -> dict[str, Any]:
        """Return the setting's parameters (without `name`) as plain JSON values."""
        return self.model_dump(mode="json", exclude={"name"})

    def label(self, steps: int = 0) -> str:
        """Return a short name for run names and tables, e.g. `jpeg-q75` (`steps` for chain purifiers)."""
        return self.name


def row_generators(seed: int, row_ids: np.ndarray) -> list[np.random.Generator]:
    """Return one numpy Generator per row, seeded by `(seed, row_id)`."""
    return [np.random.default_rng([seed, int(row_id)]) for row_id in row_ids]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Return float pixel arrays (0..255 scale) clipped, rounded and cast to uint8."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
