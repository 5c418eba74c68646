"""SkewSize on predictions whose dependence on the attribute is known (CCGM's training and jobs:
integration/test_ccgm.py)."""

from __future__ import annotations

import numpy as np
import pytest

from genlab.causal.ccgm.skewsize import skewsize


def test_skewsize_is_zero_for_attribute_blind_and_one_for_attribute_driven_predictions():
    rng = np.random.default_rng(0)
    labels, attribute = rng.integers(0, 2, 4000), rng.integers(0, 2, 4000)
    assert skewsize(labels, attribute, attribute) == pytest.approx(1.0)
    assert skewsize(labels, rng.integers(0, 2, 4000), attribute) < 0.05
    assert skewsize(labels, labels, attribute) == 0.0  # a perfect classifier: one predicted class per true class
