"""What every backdoor attack shares: its config fields, choosing the poisoned rows, a secret patch trigger,
and the dirty-label PoisonSet."""

from __future__ import annotations

import numpy as np
from pydantic import Field

from genlab.config import StrictModel
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, Trigger


class BackdoorAttackConfig(StrictModel):
    """Fields every dirty-label backdoor has: the target class and the poisoned share of the train set."""

    target_class: int = Field(0, ge=0)  # class the trigger should cause
    poison_fraction: float = Field(0.08, gt=0, lt=1)  # share of training rows replaced by poisons

    @property
    def key(self) -> str:
        """Return the name this attack goes by in tables and run names."""
        return self.name  # type: ignore[attr-defined]


def choose_source_rows(labels: np.ndarray, target_class: int, fraction: float, seed: int) -> np.ndarray:
    """Return sorted int64 indices of `fraction * N` random rows whose label is not `target_class`."""
    candidates = np.flatnonzero(labels != target_class)
    count = max(1, int(round(fraction * len(labels))))
    if count > len(candidates):
        raise ValueError(f"poison_fraction {fraction} needs {count} non-target rows, only {len(candidates)} exist")
    return np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False)).astype(np.int64)


def choose_target_rows(labels: np.ndarray, target_class: int, fraction: float, seed: int) -> np.ndarray:
    """Return sorted int64 indices of `fraction * N` random rows whose label is `target_class`."""
    candidates = np.flatnonzero(labels == target_class)
    count = max(1, int(round(fraction * len(labels))))
    if count > len(candidates):
        raise ValueError(f"poison_fraction {fraction} needs {count} rows of class {target_class}, "
                         f"only {len(candidates)} exist")
    return np.sort(np.random.default_rng(seed).choice(candidates, size=count, replace=False)).astype(np.int64)


def random_patch_trigger(shape: tuple[int, int, int], patch_size: int, seed: int) -> Trigger:
    """Return a secret patch trigger for images of `shape` (H, W, C): seeded uniform uint8 noise in the
    bottom-right `patch_size` x `patch_size` corner."""
    h, w, c = shape
    if patch_size > min(h, w):
        raise ValueError(f"patch_size {patch_size} exceeds the {h}x{w} image")
    mask = np.zeros((h, w, 1), dtype=np.float32)
    mask[h - patch_size:, w - patch_size:] = 1.0
    pattern = np.zeros((h, w, c), dtype=np.uint8)
    pattern[h - patch_size:, w - patch_size:] = np.random.default_rng(seed).integers(
        0, 256, size=(patch_size, patch_size, c), dtype=np.uint8)
    return Trigger(mask=mask, pattern=pattern, delta=np.zeros((h, w, c), dtype=np.float32))


def dirty_label_backdoor(train: ImageSet, cfg: BackdoorAttackConfig, trigger: Trigger, *, attack: str, seed: int,
                         epsilon: float | None) -> PoisonSet:
    """Return a PoisonSet: random non-target rows with `trigger` applied, relabelled to the target class."""
    if cfg.target_class >= len(train.classes):
        raise ValueError(f"target_class {cfg.target_class} is not one of the {len(train.classes)} classes")
    rows = choose_source_rows(train.labels, cfg.target_class, cfg.poison_fraction, seed)
    return PoisonSet(base_indices=rows, images=trigger.apply(train.images[rows]),
                     labels=np.full(len(rows), cfg.target_class, dtype=np.int64), attack=attack, kind="backdoor",
                     dataset_hash=train.hash, seed=seed, config=cfg.model_dump(mode="json"),
                     target_class=cfg.target_class, epsilon=epsilon, trigger=trigger)
