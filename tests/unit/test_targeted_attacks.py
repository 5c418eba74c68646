"""Targeted attacks: the trials protocol (fixed targets and bases, JSON, validated) and merging."""

import json

import numpy as np
import pytest
import torch

from genlab.attacks.targeted.trials import (
    TargetedTrial,
    load_trials,
    make_trials,
    merge_targeted,
    mergeable,
    save_trials,
)
from genlab.data.poisonset import PoisonSet
from genlab.errors import PoisonSetError
from genlab.train.classifier import ClassifierConfig, train_classifier


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


def test_only_trials_with_one_class_and_disjoint_bases_are_mergeable(digits):
    train, test = digits
    assert mergeable(make_trials(train, test, count=4, budget=0.01, seed=0, adversarial_class=2))

    def trial(index: int, adversarial_class: int, bases: list[int]) -> TargetedTrial:
        return TargetedTrial(index=index, target_index=index, target_label=0, adversarial_class=adversarial_class,
                             base_indices=np.asarray(bases, dtype=np.int64))

    # per-trial classes (runner-up, random) that coincide by chance draw their bases apart, and can share rows
    assert not mergeable([trial(0, 3, [1, 2]), trial(1, 3, [2, 5])])
    assert not mergeable([trial(0, 3, [1, 2]), trial(1, 4, [6, 7])])
    assert mergeable([trial(0, 3, [1, 2]), trial(1, 3, [6, 7])])


def test_runner_up_trials_take_the_surrogates_second_choice(digits, tmp_path):
    """adversarial_class: runner_up gives each trial the class the attacker's surrogate ranks second for its target."""
    from genlab.attacks import GradientMatchingConfig
    from genlab.attacks.crafting import adversarial_choice, craft_cached, require_whole_set
    from genlab.attacks.surrogate import clean_surrogate
    from genlab.data.convert import PIXEL, to_tensor
    from genlab.errors import ConfigError

    train, test = digits
    cfg = GradientMatchingConfig(trials=3, epsilon=4, steps=2, adversarial_class="runner_up",
                                 surrogate=ClassifierConfig(epochs=1, width=8))
    choice = adversarial_choice(cfg, train, test)["runner_up"]
    with torch.no_grad():
        logits = clean_surrogate(train, cfg.surrogate, 0)(to_tensor(test.images[:5], PIXEL))
    assert [int(np.argsort(row)[-2]) if int(row.argmax()) == label else int(row.argmax())
            for row, label in zip(logits.numpy(), test.labels[:5])] == choice[:5].tolist()
    trials = make_trials(train, test, count=3, budget=0.01, seed=0, runner_up=choice)
    assert [t.adversarial_class for t in trials] == [int(choice[t.target_index]) for t in trials]
    crafted = craft_cached(cfg, train, test, seed=0, root=tmp_path, progress=lambda _: None)
    stored = load_trials(crafted.trials_path, train_size=len(train), test_size=len(test))
    assert [t.to_json() for t in stored] == [t.to_json() for t in trials]
    assert crafted.poison is None and len({t.adversarial_class for t in trials}) > 1  # per-trial classes: no merge
    with pytest.raises(ConfigError, match="adversarial_class=runner_up"):
        require_whole_set(crafted, "gradient_matching")
    with pytest.raises(ValueError, match="runner_up"):
        make_trials(train, test, count=1, budget=0.01, seed=0, runner_up=test.labels)


def test_clopper_pearson_interval_and_fisher_test():
    from genlab.attacks.targeted.targeted_eval import rates_differ, success_rate

    none = success_rate([False] * 10)
    assert (none.rate, none.low) == (0.0, 0.0) and abs(none.high - 0.3085) < 1e-3  # 1 - 0.025 ** (1/10)
    half = success_rate([True] * 5 + [False] * 5)
    assert abs(half.low - 0.1871) < 1e-3 and abs(half.high - 0.8129) < 1e-3
    assert rates_differ(success_rate([True] * 8 + [False] * 2), none)
    assert not rates_differ(success_rate([True] * 2 + [False] * 8), none)


def test_log_probability_shift_and_sign_test(digits):
    """The effect measure of bench/targeted_efficacy.py: per-class log-probabilities and the paired sign test."""
    from genlab.attacks.targeted.targeted_eval import (
        adversarial_log_probabilities,
        fisher_pvalue,
        sign_test_pvalue,
        success_rate,
    )

    train, _ = digits
    model = train_classifier(train.images[:200], train.labels[:200], 10, ClassifierConfig(epochs=1), seed=0)
    images = train.images[:5]
    per_class = np.stack([adversarial_log_probabilities(model, images, [c] * 5) for c in range(10)], axis=1)
    assert np.all(per_class <= 0) and np.allclose(np.exp(per_class).sum(axis=1), 1.0)
    assert sign_test_pvalue([1.5] * 12) == 2 * 0.5 ** 12 and sign_test_pvalue([0.0, 1.0, -1.0]) == 1.0
    assert abs(fisher_pvalue(success_rate([True] * 5 + [False] * 7), success_rate([False] * 12)) - 0.0373) < 1e-3


@pytest.mark.parametrize("name", ["gradient_matching", "bullseye_polytope"])
def test_poisons_respect_epsilon_and_round_trip_the_importer(digits, tmp_path, name):
    from genlab.attacks import TARGETED_CRAFTERS, BullseyePolytopeConfig, GradientMatchingConfig
    from genlab.data.poisonset import load_poison_set

    train, test = digits
    config = {"gradient_matching": GradientMatchingConfig, "bullseye_polytope": BullseyePolytopeConfig}[name]
    cfg = config(epsilon=6.5, steps=8, surrogate=ClassifierConfig(epochs=1, width=8))
    trial = make_trials(train, test, count=1, budget=0.01, seed=1)[0]
    messages = []
    poison = TARGETED_CRAFTERS[name](cfg, train, test, trial, seed=0, progress=messages.append)
    moved = np.abs(poison.images.astype(int) - train.images[trial.base_indices].astype(int))
    assert moved.max() == 6 and moved.mean() > 1  # floor(epsilon), and the poisons did move
    assert poison.kind == "targeted" and poison.target_class == trial.adversarial_class
    assert np.array_equal(poison.labels, train.labels[trial.base_indices])  # clean-label
    path = poison.save(tmp_path / name)
    loaded = load_poison_set(path, train_size=len(train), image_shape=train.shape, num_classes=10,
                             dataset_hash=train.hash, clean_images=train.images)
    assert loaded.hash == poison.hash


def test_gradient_matching_snapshots_are_the_surrogates_training_path(digits):
    """The snapshot ensemble holds the surrogate after each chosen epoch; the last is the trained surrogate."""
    from pydantic import ValidationError

    from genlab.attacks import GradientMatchingConfig
    from genlab.attacks.gradient_alignment import alignment_epochs
    from genlab.attacks.surrogate import clean_surrogate, surrogate_snapshots

    surrogate = ClassifierConfig(epochs=2, width=8)
    with pytest.raises(ValidationError, match="snapshot_epochs"):
        GradientMatchingConfig(snapshot_epochs=[3], surrogate=surrogate)
    cfg = GradientMatchingConfig(snapshot_epochs=[1], surrogate=surrogate)
    train, _ = digits
    first, last = surrogate_snapshots(train, surrogate, 0, alignment_epochs(cfg.snapshot_epochs, 2))
    weights = [next(m.net.parameters()).detach() for m in (first, last, clean_surrogate(train, surrogate, 0))]
    assert not torch.equal(weights[0], weights[1]) and torch.equal(weights[1], weights[2])


def test_transfer_regimes_train_head_only_or_everything(digits, tmp_path):
    from genlab.train.transfer import load_classifier, save_classifier

    train, _ = digits
    small = ClassifierConfig(epochs=1, width=8)
    pretrained = train_classifier(train.images, train.labels, 10, small, seed=0)
    path = save_classifier(tmp_path / "pre", pretrained, small, in_channels=1, num_classes=10)
    before = load_classifier(path).state_dict()
    assert all(torch.equal(before[k], v) for k, v in pretrained.state_dict().items())
    for regime, features_move in (("linear_probe", False), ("fine_tune", True)):
        cfg = small.model_copy(update={"regime": regime, "pretrained": str(path)})
        after = train_classifier(train.images, train.labels, 10, cfg, seed=1).state_dict()
        conv = "net.features.0.weight"
        assert (not torch.equal(before[conv], after[conv])) == features_move, regime
        assert torch.equal(before["net.features.1.running_mean"], after["net.features.1.running_mean"]) != features_move
        assert not torch.equal(before["net.head.weight"], after["net.head.weight"])
