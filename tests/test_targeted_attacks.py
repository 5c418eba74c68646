"""Targeted attacks: the trials protocol (fixed targets and bases, JSON, validated) and merging."""

import json

import numpy as np
import pytest

from genlab.attacks.poisonset import PoisonSet
from genlab.attacks.trials import load_trials, make_trials, merge_targeted, save_trials
from genlab.errors import PoisonSetError


def test_trials_are_fixed_valid_and_round_trip(digits, tmp_path):
    train, test = digits
    trials = make_trials(train, test, count=6, budget=0.01, seed=3)
    again = make_trials(train, test, count=6, budget=0.01, seed=3)
    assert [t.to_json() for t in trials] == [t.to_json() for t in again]
    assert len({t.target_index for t in trials}) == 6
    for trial in trials:
        assert trial.adversarial_class != trial.target_label == test.labels[trial.target_index]
        assert np.all(train.labels[trial.base_indices] == trial.adversarial_class)
        assert len(trial.base_indices) == round(0.01 * len(train))
    path = save_trials(trials, tmp_path / "trials.json")
    loaded = load_trials(path, train_size=len(train), test_size=len(test))
    assert [t.to_json() for t in loaded] == [t.to_json() for t in trials]
    assert all(t.base_indices.dtype == np.int64 for t in loaded)


def test_bad_trials_file_is_refused(digits, tmp_path):
    train, test = digits
    path = save_trials(make_trials(train, test, count=2, budget=0.01, seed=0), tmp_path / "trials.json")
    payload = json.loads(path.read_text())
    payload["trials"][1]["base_indices"] = [len(train)]
    path.write_text(json.dumps(payload))
    with pytest.raises(PoisonSetError, match="trial 1: base_indices must lie in the train set"):
        load_trials(path, train_size=len(train), test_size=len(test))


def test_shared_class_trials_merge_into_one_poison_set(digits):
    train, test = digits
    trials = make_trials(train, test, count=4, budget=0.01, seed=0, adversarial_class=2)
    poisons = [PoisonSet(base_indices=t.base_indices, images=train.images[t.base_indices],
                         labels=train.labels[t.base_indices], attack="demo", kind="targeted", dataset_hash=train.hash,
                         seed=0, target_class=2, target_test_indices=[t.target_index], epsilon=8.0) for t in trials]
    merged = merge_targeted(poisons)
    assert merged.target_test_indices == [t.target_index for t in trials]
    assert np.all(np.diff(merged.base_indices) > 0) and len(merged.base_indices) == 4 * len(trials[0].base_indices)
    assert np.array_equal(merged.images, train.images[merged.base_indices])
    with pytest.raises(PoisonSetError, match="share base rows"):
        merge_targeted([poisons[0], poisons[0]])
