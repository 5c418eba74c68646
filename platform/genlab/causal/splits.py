"""Train / test splits of tabular data and train-split standardisation.

Two kinds (spec 5.5): the deliberate out-of-distribution `tail` split (test = the rows beyond a
quantile of one variable) and the in-distribution `random` split (test = a random share of the
rows, the same size as the tail), the contrast the papers' protocol draws.
"""

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


def random_split(num_rows: int, test_share: float, seed: tuple[int, ...]) -> np.ndarray:
    """Return a test mask bool [num_rows] of round(test_share * num_rows) rows drawn without replacement by `seed`."""
    mask = np.zeros(num_rows, dtype=bool)
    mask[np.random.default_rng(list(seed)).choice(num_rows, size=round(test_share * num_rows), replace=False)] = True
    return mask


def split_mask(table: np.ndarray, column: int, kind: str, quantile: float, seed: int) -> np.ndarray:
    """Return the test rows bool [N] of one replica: the `quantile` tail of `column` (kind tail) or a random share
    of the same size (kind random, drawn from (seed, column), so each column gives another random split)."""
    if kind == "tail":
        return tail_split(table[:, column], quantile)
    return random_split(len(table), 1.0 - quantile if quantile >= 0.5 else quantile, (seed, column))


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
    """Which splits a model is scored on: one per listed variable (its tail, or a random split of the same size)."""

    kind: Literal["tail", "random"] = "tail"  # tail: deliberate OOD split; random: in-distribution contrast
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
