"""Narcissus: a clean-label backdoor that works on an undefended model, within its budget, in the PoisonSet format
(the test-time magnitude field of the format: unit/test_narcissus.py)."""

import numpy as np
import pytest
import torch

from genlab.attacks import NarcissusConfig, craft_poisons
from genlab.train.classifier import ClassifierConfig, train_classifier
from genlab.train.evaluation import natural_accuracy, poison_success_rate
from tests.helpers import load_poisons

SMALL = dict(poison_fraction=0.05, epsilon=16.0, test_magnitude=3.0, trigger_steps=100)


@pytest.fixture(scope="module")
def narcissus(digits):
    torch.set_num_threads(1)
    return craft_poisons(NarcissusConfig(**SMALL), digits[0], seed=0)


def test_poisoned_model_follows_the_trigger_far_more_than_a_clean_one(narcissus, digits):
    train, test = digits
    victim = ClassifierConfig(epochs=8)
    clean = train_classifier(train.images, train.labels, 10, victim, seed=0)
    poisoned_train = train.replace_rows(narcissus.base_indices, narcissus.images, narcissus.labels)
    poisoned = train_classifier(poisoned_train.images, poisoned_train.labels, 10, victim, seed=0)
    no_poison_rate = poison_success_rate(clean, test, narcissus)
    poisoned_rate = poison_success_rate(poisoned, test, narcissus)
    print(f"narcissus x{narcissus.test_magnitude:g}: poisoned {poisoned_rate:.3f}, no poison {no_poison_rate:.3f}, "
          f"natural accuracy {natural_accuracy(poisoned, test):.3f} vs {natural_accuracy(clean, test):.3f}")
    assert no_poison_rate < 0.15
    assert poisoned_rate > 0.5 and poisoned_rate - no_poison_rate > 0.4
    assert natural_accuracy(poisoned, test) > 0.9


def test_poisons_are_clean_label_and_within_epsilon(narcissus, digits):
    train, _ = digits
    assert len(narcissus.base_indices) == round(0.05 * len(train))
    assert np.all(train.labels[narcissus.base_indices] == 0) and np.all(narcissus.labels == 0)
    moved = np.abs(narcissus.images.astype(int) - train.images[narcissus.base_indices].astype(int))
    assert moved.max() <= 16 and moved.mean() > 2
    assert np.abs(narcissus.trigger.delta).max() <= 16 and narcissus.trigger.mask.max() == 0


def test_round_trips_through_the_importer_unchanged(narcissus, digits, tmp_path):
    train, test = digits
    loaded = load_poisons(narcissus.save(tmp_path / "narcissus"), train)
    assert loaded.hash == narcissus.hash and loaded.test_magnitude == 3.0
    for name in ("base_indices", "images", "labels"):
        assert np.array_equal(getattr(loaded, name), getattr(narcissus, name))
    assert np.array_equal(loaded.trigger.delta, narcissus.trigger.delta)
