"""Externally crafted poisons, taken by reference: a PoisonSet file validated against the dataset."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from genlab.config import StrictModel
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, load_poison_set_for


class ImportedPoisonConfig(StrictModel):
    """A PoisonSet file (npz + JSON) crafted elsewhere; it is validated before use."""

    name: Literal["imported"] = "imported"
    path: str  # path of the PoisonSet .npz (its .json sidecar beside it)

    @property
    def key(self) -> str:
        """Return the name this poison goes by in tables and run names."""
        return f"imported-{Path(self.path).stem}"


def load_imported(cfg: ImportedPoisonConfig, train: ImageSet, seed: int, test: ImageSet | None = None) -> PoisonSet:
    """Return the PoisonSet at `cfg.path` validated against `train` (and the test rows it targets against `test`,
    when given); a `PoisonSetError` names the reason if it is inconsistent."""
    return load_poison_set_for(cfg.path, train, test)
