"""Sleeper Agent: a from-scratch victim trained on its hidden-trigger poisons follows the trigger; a clean one does not
(its config: unit/test_sleeper_agent.py)."""

import numpy as np

from genlab.attacks.targeted.targeted_eval import rates_differ
from genlab.train.classifier import ClassifierConfig
from tests.integration.victims import trigger_outcomes


def test_from_scratch_victim_follows_the_hidden_trigger(digits, tmp_path):
    """3% poisons (43 class-0 rows), epsilon 32, 6x6 patch, 2 retraining rounds; victims seeded unlike the surrogate."""
    from genlab.attacks import SleeperAgentConfig, craft_poisons
    from genlab.data.poisonset import load_poison_set

    train, test = digits
    attack = SleeperAgentConfig(target_class=0, poison_fraction=0.03, epsilon=32, patch_size=6, steps=200,
                                retrain_rounds=2)
    poison = craft_poisons(attack, train, seed=0)
    moved = np.abs(poison.images.astype(int) - train.images[poison.base_indices].astype(int))
    assert moved.max() <= 32 and np.all(poison.labels == 0) and np.all(train.labels[poison.base_indices] == 0)
    loaded = load_poison_set(poison.save(tmp_path / "sleeper"), train_size=len(train), image_shape=train.shape,
                             num_classes=10, dataset_hash=train.hash, clean_images=train.images)
    assert loaded.hash == poison.hash
    rates, accuracies = trigger_outcomes(train, poison, test, ClassifierConfig(epochs=8), target_class=0)
    print(f"sleeper agent, from scratch: poisoned {rates['poisoned']}; clean {rates['clean']}; accuracy {accuracies}")
    assert rates["poisoned"].rate >= 0.5 and rates["clean"].rate <= 0.02, rates
    assert rates_differ(rates["poisoned"], rates["clean"])
    assert accuracies["poisoned"] >= accuracies["clean"] - 0.02  # the backdoor stays hidden
