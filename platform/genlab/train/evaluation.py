"""Evaluation: natural accuracy and poison success rate, both fractions in [0, 1]."""

from __future__ import annotations

import numpy as np
from torch import nn

from genlab.data.imageset import ImageSet
from genlab.data.poisonset import PoisonSet
from genlab.train.classifier import predict


def natural_accuracy(model: nn.Module, test: ImageSet) -> float:
    """Return the fraction of clean test images classified correctly."""
    return float((predict(model, test.images) == test.labels).mean())


def poison_success_rate(model: nn.Module, test: ImageSet, poison: PoisonSet, magnitude: float | None = None) -> float:
    """Return the attack's success as a fraction in [0, 1].

    Backdoor: the share of non-target-class test images that, with the trigger applied (its
    delta scaled by `magnitude`, default the set's `test_magnitude`), are assigned to the target class. Targeted:
    the share of target test images classified as the poisons' (adversarial) label.
    """
    if poison.kind == "backdoor":
        keep = test.labels != poison.target_class
        triggered = poison.trigger.apply(test.images[keep], poison.test_magnitude if magnitude is None else magnitude)
        return float((predict(model, triggered) == poison.target_class).mean())
    targets = np.asarray(poison.target_test_indices, dtype=np.int64)
    adversarial = int(poison.labels[0])
    return float((predict(model, test.images[targets]) == adversarial).mean())
