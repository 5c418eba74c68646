"""First attacks without training: blend stays within its budget (their success: integration/test_attacks.py)."""

import numpy as np

from genlab.attacks import BlendConfig, craft_poisons


def test_blend_respects_its_budget(digits):
    train, _ = digits
    poison = craft_poisons(BlendConfig(epsilon=16), train, seed=0)
    moved = np.abs(poison.images.astype(int) - train.images[poison.base_indices].astype(int))
    assert moved.max() <= 16 and moved.mean() > 4
