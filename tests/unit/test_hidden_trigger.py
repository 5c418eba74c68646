"""Hidden Trigger Backdoor poisons: clean-label, within epsilon, no trigger on them, and a PoisonSet that
round-trips the importer (efficacy: tests/test_targeted_efficacy.py)."""

import numpy as np
import pytest
from pydantic import ValidationError


def test_poisons_hide_the_trigger_within_epsilon_and_round_trip(digits, tmp_path):
    from genlab.attacks import HiddenTriggerConfig, craft_poisons
    from genlab.data.poisonset import load_poison_set
    from genlab.train.classifier import ClassifierConfig

    train, _ = digits
    cfg = HiddenTriggerConfig(target_class=2, poison_fraction=0.02, epsilon=9.5, patch_size=5, steps=10,
                              surrogate=ClassifierConfig(epochs=1, width=8))
    poison = craft_poisons(cfg, train, seed=3)
    assert np.all(train.labels[poison.base_indices] == 2) and np.all(poison.labels == 2)  # clean-label
    moved = np.abs(poison.images.astype(int) - train.images[poison.base_indices].astype(int))
    assert moved.max() <= 9 and moved.mean() > 0.5  # within floor(epsilon), and the poisons did move
    patch = poison.trigger.mask[..., 0] == 1
    assert patch.sum() == 25 and not np.array_equal(poison.images[:, patch], poison.trigger.pattern[None, patch])
    loaded = load_poison_set(poison.save(tmp_path / "htb"), train_size=len(train), image_shape=train.shape,
                             num_classes=10, dataset_hash=train.hash, clean_images=train.images)
    assert loaded.hash == poison.hash and loaded.kind == "backdoor"


def test_a_patch_larger_than_the_image_is_refused(digits):
    from genlab.attacks import HiddenTriggerConfig, craft_poisons

    with pytest.raises(ValueError, match="patch_size 17"):
        craft_poisons(HiddenTriggerConfig(patch_size=17), digits[0], seed=0)
    with pytest.raises(ValidationError, match="epsilon"):
        HiddenTriggerConfig(epsilon=0)
