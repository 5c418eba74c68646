"""The adaptive-evaluation checklist (Athalye et al. 2018; Carlini et al. 2019; Croce et al. 2022), as checks
on measured accuracies. Each returns a `Check`: its name, whether it passed, and the numbers it compared.

"Beyond noise" is `noise_margin(p, n)`: two binomial standard errors of an accuracy p measured on
n images, plus one image (a stochastic defense gives a slightly different accuracy on every draw).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

UNBOUNDED_MAX_ACCURACY = 0.05  # epsilon = 1 must drive accuracy to at most this, else gradients are masked


@dataclass(frozen=True)
class Check:
    """One sanity check's outcome."""

    name: str
    passed: bool
    detail: str

    def as_dict(self) -> dict[str, Any]:
        """Return the check as JSON values."""
        return asdict(self)


def noise_margin(accuracy: float, count: int) -> float:
    """Return how far a repeated accuracy measurement (fraction) on `count` images may move by chance."""
    return 2 * math.sqrt(max(accuracy * (1 - accuracy), 0.0) / max(count, 1)) + 1 / max(count, 1)


def robust_below_clean(clean: float, robust: dict[str, float], count: int) -> Check:
    """Every attack's robust accuracy is at most the clean accuracy (within noise)."""
    worst = {k: v for k, v in robust.items() if v > clean + noise_margin(clean, count)}
    return Check("robust_at_most_clean", not worst,
                 f"clean {clean:.3f}; above it: {worst}" if worst else f"clean {clean:.3f} >= every robust accuracy")


def stronger_not_better(base: float, stronger: dict[str, float], count: int) -> Check:
    """More iterations or more EOT samples never raise robust accuracy beyond noise."""
    worse = {k: v for k, v in stronger.items() if v > base + noise_margin(base, count)}
    return Check("stronger_attack_not_weaker", not worse,
                 f"base {base:.3f}; stronger attacks scoring higher: {worse}" if worse
                 else f"base {base:.3f}; stronger attacks {stronger}")


def unbounded_breaks(robust: float) -> Check:
    """An unbounded attack (epsilon = 1) reaches at most 5% accuracy; otherwise gradients are obfuscated."""
    return Check("unbounded_attack_succeeds", robust <= UNBOUNDED_MAX_ACCURACY,
                 f"accuracy under epsilon=1 is {robust:.3f} (must be <= {UNBOUNDED_MAX_ACCURACY}; "
                 + ("ok)" if robust <= UNBOUNDED_MAX_ACCURACY else "gradients are obfuscated, not a robustness claim)"))


def undefended_not_stronger(purified: dict[str, float], undefended: dict[str, float], count: int) -> Check:
    """Under the same attack, the classifier without the purifier is at or below the purified one (within noise)."""
    above = {k: (undefended[k], v) for k, v in purified.items() if undefended[k] > v + noise_margin(v, count)}
    return Check("undefended_at_most_purified", not above,
                 f"(undefended, purified) where undefended is higher: {above}" if above
                 else "undefended <= purified under every attack")
