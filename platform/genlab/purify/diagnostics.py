"""What a purifier leaves of a backdoor trigger, measured on images (why a defense works or does not).

Each number compares an image with its triggered copy:

- `trigger_kept`: purify `x` and `x + d` with the same row ids, so both see the same chain noise,
  and project the difference of the results on the trigger: (P(x + d) - P(x)) . d / |d|^2,
  pooled over rows. 1 means the trigger passes through untouched, 0 that it is removed; noise
  that is not along the trigger does not count.
- `energy_gap_sd`: how much higher the EBM's energy is on triggered images than on the same
  images clean, in units of the clean images' energy spread. A large gap says the EBM sees the
  trigger as off the data; it does not say the Langevin chain removes it (`trigger_kept` does).
- `drift_along_trigger`: the share of the trigger one Langevin step's drift takes back at the
  triggered image, noise aside: whether the energy's downhill direction points back along the
  trigger or elsewhere.
"""

from __future__ import annotations

import numpy as np

from genlab.data.convert import to_tensor
from genlab.purify.base import Purifier
from genlab.purify.puregen import EnergyScorer
from genlab.samplers.langevin import LangevinSampler


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


def drift_along_trigger(sampler: LangevinSampler, images: np.ndarray, triggered: np.ndarray) -> float:
    """Return the mean over rows of the share of the trigger d one drift step removes at the triggered image:
    (eps^2 / 2) grad G(x + d) / tau . d / |d|^2 in [-1, 1] units (0.03 = 3% per step; <= 0: none)."""
    x = to_tensor(triggered, device=sampler.device)
    trigger = (x - to_tensor(images, device=sampler.device)).flatten(1)
    drift = (sampler.step_size ** 2 / 2) * sampler.energy_gradient(x).flatten(1)
    return float(((drift * trigger).sum(1) / trigger.pow(2).sum(1).clamp_min(1e-12)).mean())
