"""BadNets (Gu et al. 2017): a visible checkerboard patch in a corner, relabelled to the target class."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from genlab.attacks.backdoor.base import BackdoorAttackConfig, dirty_label_backdoor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, Trigger


class BadNetsConfig(BackdoorAttackConfig):
    """BadNets: patch size and corner."""

    name: Literal["badnets"] = "badnets"
    patch_size: int = Field(3, ge=1)  # side of the square patch, pixels
    corner: Literal["bottom_right", "top_left"] = "bottom_right"  # where the patch sits


def badnets_trigger(cfg: BadNetsConfig, shape: tuple[int, int, int]) -> Trigger:
    """Return the checkerboard patch trigger for images of `shape` (H, W, C)."""
    h, w, c = shape
    if cfg.patch_size > min(h, w):
        raise ValueError(f"patch_size {cfg.patch_size} exceeds the {h}x{w} image")
    mask = np.zeros((h, w, 1), dtype=np.float32)
    rows = slice(h - cfg.patch_size, h) if cfg.corner == "bottom_right" else slice(0, cfg.patch_size)
    cols = slice(w - cfg.patch_size, w) if cfg.corner == "bottom_right" else slice(0, cfg.patch_size)
    mask[rows, cols] = 1.0
    checker = (np.indices((h, w)).sum(axis=0) % 2 == 0).astype(np.uint8) * 255
    pattern = np.repeat(checker[..., None], c, axis=2)
    return Trigger(mask=mask, pattern=pattern, delta=np.zeros((h, w, c), dtype=np.float32))


def craft_badnets(cfg: BadNetsConfig, train: ImageSet, seed: int) -> PoisonSet:
    """Return the BadNets PoisonSet for `train` (dirty-label, patch trigger)."""
    return dirty_label_backdoor(train, cfg, badnets_trigger(cfg, train.shape), attack="badnets", seed=seed, epsilon=None)
