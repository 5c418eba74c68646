"""Deliberate out-of-distribution splits and train-split standardisation for tabular data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from pydantic import Field

from genlab.config import StrictModel
from genlab.errors import ConfigError


def tail_split(values: np.ndarray, quantile: float) -> np.ndarray:
    """Return the test mask bool [N]: values above the `quantile` (>= 0.5) or below it (< 0.5)."""
    cut = np.quantile(values, quantile)
    return values > cut if quantile >= 0.5 else values < cut


@dataclass(frozen=True)
class Standardizer:
    """Per-column mean and standard deviation of a train split (float64 [n] each)."""

    mean: np.ndarray
    std: np.ndarray

    @classmethod
    def fit(cls, train: np.ndarray) -> "Standardizer":
        """Return the standardiser of `train` [N, n]; constant columns get std 1."""
        std = train.std(axis=0)
        return cls(mean=train.mean(axis=0), std=np.where(std > 0, std, 1.0))

    def transform(self, data: np.ndarray) -> np.ndarray:
        """Return `data` [N, n] in standardised units (train mean 0, train std 1), float32."""
        return ((data - self.mean) / self.std).astype(np.float32)


class SplitSettings(StrictModel):
    """Which deliberate out-of-distribution splits a model is scored on (one per listed variable)."""

    variables: Literal["all", "exogenous"] | list[str] = "all"  # split on every node, the exogenous ones, or these
    quantile: float = Field(0.75, gt=0, lt=1)  # test = rows above this quantile of the variable (below if < 0.5)


def split_columns(nodes: tuple[str, ...], exogenous: tuple[str, ...], settings: SplitSettings) -> list[int]:
    """Return the column indices to split on; ConfigError naming an unknown variable."""
    if settings.variables == "all":
        return list(range(len(nodes)))
    if settings.variables == "exogenous":
        return [nodes.index(node) for node in exogenous]
    for name in settings.variables:
        if name not in nodes:
            raise ConfigError(f"config key split.variables: unknown variable {name!r} (nodes: {', '.join(nodes)})")
    return [nodes.index(name) for name in settings.variables]
