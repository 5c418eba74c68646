"""First attacks: on the default data with no defense they succeed and keep natural accuracy (small CNNs trained
on the digits; the blend budget: unit/test_attacks.py)."""

import numpy as np
import pytest

from genlab.attacks import BadNetsConfig, BlendConfig, craft_poisons
from genlab.train.classifier import ClassifierConfig, train_classifier
from genlab.train.evaluation import natural_accuracy, poison_success_rate


@pytest.mark.parametrize("attack", [BadNetsConfig(), BlendConfig()], ids=["badnets", "blend"])
def test_undefended_attack_succeeds(digits, attack):
    train, test = digits
    poison = craft_poisons(attack, train, seed=0)
    assert np.all(train.labels[poison.base_indices] != attack.target_class)
    assert np.all(poison.labels == attack.target_class)
    poisoned = train.replace_rows(poison.base_indices, poison.images, poison.labels)
    model = train_classifier(poisoned.images, poisoned.labels, 10, ClassifierConfig(), seed=0)
    assert natural_accuracy(model, test) >= 0.90
    assert poison_success_rate(model, test, poison) >= 0.80


def test_clean_model_ignores_the_trigger(digits):
    train, test = digits
    poison = craft_poisons(BadNetsConfig(), train, seed=0)
    model = train_classifier(train.images, train.labels, 10, ClassifierConfig(epochs=6), seed=0)
    assert poison_success_rate(model, test, poison) < 0.2
