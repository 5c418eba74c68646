"""Success of a targeted attack over many trials, with a binomial confidence interval.

Per trial, success = the target test image is classified as the adversarial class (spec
section 7: PSR_i = 1[argmax F(x_i) = y_adv]); the rate over n trials is k/n, reported with an
exact Clopper-Pearson interval (scipy's beta quantiles), so rates over few targets are not
over-read. `rates_differ` says whether two rates are told apart (Fisher's exact test).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import stats


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


def rates_differ(a: SuccessRate, b: SuccessRate, significance: float = 0.05) -> bool:
    """Return True if the two rates differ at `significance` (two-sided Fisher exact test)."""
    table = [[a.successes, a.trials - a.successes], [b.successes, b.trials - b.successes]]
    return bool(stats.fisher_exact(table).pvalue < significance)
