"""Blend: a fixed random +-epsilon pattern added to source images, relabelled to the target class."""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field

from genlab.attacks.backdoor.base import BackdoorAttackConfig, dirty_label_backdoor
from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet, Trigger


class BlendConfig(BackdoorAttackConfig):
    """Blend: the pattern's L-inf size and its seed."""

    name: Literal["blend"] = "blend"
    epsilon: float = Field(32.0, gt=0, le=255)  # L-inf size of the additive pattern, pixel units (of 255)
    pattern_seed: int = 1234  # seed of the +-epsilon sign pattern


def blend_trigger(cfg: BlendConfig, shape: tuple[int, int, int]) -> Trigger:
    """Return the additive sign-pattern trigger (every pixel moves by exactly +-epsilon)."""
    h, w, c = shape
    signs = np.random.default_rng(cfg.pattern_seed).choice([-1.0, 1.0], size=(h, w, c)).astype(np.float32)
    return Trigger(mask=np.zeros((h, w, 1), dtype=np.float32), pattern=np.zeros(shape, dtype=np.uint8),
                   delta=signs * np.float32(cfg.epsilon))


def craft_blend(cfg: BlendConfig, train: ImageSet, seed: int) -> PoisonSet:
    """Return the blend PoisonSet for `train` (dirty-label, additive trigger within epsilon)."""
    return dirty_label_backdoor(train, cfg, blend_trigger(cfg, train.shape), attack="blend", seed=seed,
                                epsilon=cfg.epsilon)
