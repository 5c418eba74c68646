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

    def speed_params(self, image_shape: tuple[int, ...]) -> dict[str, str]:
        """Return how this purifier runs its networks on images of `image_shape` (NHWC) as MLflow params (device,
        dtype, memory_format, compiled, batch_size; prefixed by stage for combinations); empty without a network."""
        return {}


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

    def snapshot_path(self) -> str | None:
        """Return the dotted field holding the step counts one run yields (None for one-shot transforms)."""
        return None

    def params(self, steps: int | None = None) -> dict[str, Any]:
        """Return the parameters that define the transform, as plain JSON values.

        Model locations and speed knobs (`OPERATIONAL_FIELDS`) are left out; with `steps`, the
        snapshot field holds that one step count instead of the whole list.
        """
        data = _without_operational(self.model_dump(mode="json", exclude={"name"}))
        path = self.snapshot_path()
        if steps is not None and path is not None:
            *parents, leaf = path.split(".")
            node = data
            for key in parents:
                node = node[key]
            node[leaf] = steps
        return data

    def label(self, steps: int = 0) -> str:
        """Return a short name for run names and tables, e.g. `jpeg-q75` (`steps` for chain purifiers)."""
        return self.name


OPERATIONAL_FIELDS = frozenset({"checkpoint", "registered_model", "model_version", "batch_size", "device",
                                "precision", "channels_last", "compile"})


def _without_operational(data: Any) -> Any:
    """Return nested settings data without the OPERATIONAL_FIELDS keys."""
    if isinstance(data, dict):
        return {k: _without_operational(v) for k, v in data.items() if k not in OPERATIONAL_FIELDS}
    return data


def row_generators(seed: int, row_ids: np.ndarray) -> list[np.random.Generator]:
    """Return one numpy Generator per row, seeded by `(seed, row_id)`."""
    return [np.random.default_rng([seed, int(row_id)]) for row_id in row_ids]


def to_uint8(images: np.ndarray) -> np.ndarray:
    """Return float pixel arrays (0..255 scale) clipped, rounded and cast to uint8."""
    return np.clip(np.rint(images), 0, 255).astype(np.uint8)
