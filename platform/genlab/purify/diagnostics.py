"""What a purifier leaves of a backdoor trigger, measured on images (why a defense works or does not).

Both numbers compare each image with its triggered copy:

- `trigger_kept`: purify `x` and `x + d` with the same row ids, so both see the same chain noise,
  and project the difference of the results on the trigger: (P(x + d) - P(x)) . d / |d|^2,
  pooled over rows. 1 means the trigger passes through untouched, 0 that it is removed; noise
  that is not along the trigger does not count.
- `energy_gap_sd`: how much higher the EBM's energy is on triggered images than on the same
  images clean, in units of the clean images' energy spread. A large gap says the EBM sees the
  trigger as off the data; it does not say the Langevin chain removes it (`trigger_kept` does).
"""

from __future__ import annotations

import numpy as np

from genlab.purify.base import Purifier
from genlab.purify.puregen import EnergyScorer


def trigger_kept(purifier: Purifier, images: np.ndarray, triggered: np.ndarray) -> dict[int, float]:
    """Return `{step count: share of the trigger kept along its own direction}` (1 = intact, 0 = removed).

    `images` and `triggered` are uint8 NHWC arrays of one shape (`triggered` = `images` with the trigger
    added and clipped); the share is pooled over all rows, in pixel units.
    """
    if images.shape != triggered.shape:
        raise ValueError(f"images {images.shape} and triggered {triggered.shape} differ in shape")
    rows = np.arange(len(images))
    trigger = triggered.astype(np.float64) - images.astype(np.float64)
    norm = float((trigger * trigger).sum())
    if norm == 0:
        raise ValueError("the triggered images equal the clean ones: no trigger to measure")
    clean, attacked = purifier.purify(images, rows), purifier.purify(triggered, rows)
    return {t: float(((attacked[t].astype(np.float64) - clean[t].astype(np.float64)) * trigger).sum() / norm)
            for t in clean}


def energy_gap_sd(scorer: EnergyScorer, images: np.ndarray, triggered: np.ndarray) -> float:
    """Return the mean energy rise G(triggered) - G(images), divided by the std of G over `images` (unitless)."""
    clean = scorer.scores(images)
    return float((scorer.scores(triggered) - clean).mean() / max(clean.std(), 1e-12))
