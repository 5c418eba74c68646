"""Success of a targeted attack over many trials, with a binomial confidence interval.

Per trial, success = the target test image is classified as the adversarial class (spec
section 7: PSR_i = 1[argmax F(x_i) = y_adv]); the rate over n trials is k/n, reported with an
exact Clopper-Pearson interval (scipy's beta quantiles), so rates over few targets are not
over-read. `rates_differ` says whether two rates are told apart (Fisher's exact test).
`adversarial_log_probabilities` and `sign_test_pvalue` measure an attack's effect where few targets
flip: how far each target's adversarial class moved up under a poisoned victim against a clean one.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from scipy import stats
from torch import nn

from genlab.data.convert import PIXEL, to_tensor


@dataclass(frozen=True)
class SuccessRate:
    """k successes out of n trials: `rate` = k/n and its two-sided Clopper-Pearson interval, all in [0, 1]."""

    successes: int
    trials: int
    rate: float
    low: float
    high: float
    confidence: float

    def __str__(self) -> str:
        return (f"{self.successes}/{self.trials} = {self.rate:.0%} "
                f"({self.confidence:.0%} CI {self.low:.0%}-{self.high:.0%})")


def success_rate(hits: np.ndarray | list[bool], confidence: float = 0.95) -> SuccessRate:
    """Return the share of true entries of `hits` (one per trial) with its Clopper-Pearson interval."""
    hits = np.asarray(hits, dtype=bool)
    n, k = len(hits), int(hits.sum())
    if n == 0:
        raise ValueError("success_rate needs at least one trial")
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return SuccessRate(successes=k, trials=n, rate=k / n, low=low, high=high, confidence=confidence)


def targeted_hits(predictions: np.ndarray, adversarial_classes: np.ndarray | list[int]) -> np.ndarray:
    """Return bool [n]: whether each target's predicted label (int64 [n]) is its trial's adversarial class."""
    return np.asarray(predictions) == np.asarray(adversarial_classes)


def fisher_pvalue(a: SuccessRate, b: SuccessRate) -> float:
    """Return the two-sided p-value in [0, 1] of Fisher's exact test that the two rates are equal."""
    table = [[a.successes, a.trials - a.successes], [b.successes, b.trials - b.successes]]
    return float(stats.fisher_exact(table).pvalue)


def rates_differ(a: SuccessRate, b: SuccessRate, significance: float = 0.05) -> bool:
    """Return True if the two rates differ at `significance` (two-sided Fisher exact test)."""
    return fisher_pvalue(a, b) < significance


@torch.no_grad()
def adversarial_log_probabilities(model: nn.Module, images: np.ndarray, classes: np.ndarray | list[int]) -> np.ndarray:
    """Return float64 [n]: log-probability (nats, <= 0) that `model` gives each uint8 NHWC image's class in `classes`."""
    device = next(model.parameters()).device
    log_probs = torch.log_softmax(model(to_tensor(images, PIXEL, device)).double(), dim=1).cpu()
    return log_probs[torch.arange(len(images)), torch.tensor(np.asarray(classes))].numpy()


def sign_test_pvalue(shifts: np.ndarray | list[float]) -> float:
    """Return the two-sided sign test's p-value in [0, 1] that positive and negative `shifts` are equally
    likely (zeros dropped; 1.0 when none are left)."""
    shifts = np.asarray(shifts, dtype=float)
    moved = shifts[shifts != 0]
    return 1.0 if len(moved) == 0 else float(stats.binomtest(int((moved > 0).sum()), len(moved), 0.5).pvalue)
