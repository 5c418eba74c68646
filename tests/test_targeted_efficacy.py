"""Clean-label attacks in the transfer setting work on the embedded data: success on undefended victims
far above the no-poison rate, compared with Fisher's exact test (genlab.attacks.targeted_eval).

The paper's linear-transfer setting scaled to digits 16x16: an extractor pretrained on the rows
outside a 500-row fine-tuning set (50 per class, as BP's 'others' split), and a victim that
trains a linear probe on that set. Bullseye Polytope crafts one trial per target (fixed targets
and bases, genlab.attacks.trials); Hidden Trigger Backdoor is scored on every triggered
non-target test image.
"""

import numpy as np
import pytest

from genlab.attacks.targeted_eval import rates_differ, success_rate, targeted_hits
from genlab.attacks.trials import make_trials
from genlab.train.classifier import ClassifierConfig, predict, train_classifier

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def transfer_setting(digits, tmp_path_factory):
    """(probe set of 500 rows, test set, checkpoint path of an extractor pretrained on the other rows)."""
    from genlab.train.transfer import save_classifier

    full, test = digits
    probe_set, others = full.subset(np.arange(500)), full.subset(np.arange(500, len(full)))
    extractor_cfg = ClassifierConfig(epochs=8)
    extractor = train_classifier(others.images, others.labels, 10, extractor_cfg, seed=5)
    path = save_classifier(tmp_path_factory.mktemp("extractor") / "extractor", extractor, extractor_cfg,
                           in_channels=1, num_classes=10)
    return probe_set, test, str(path)


def test_bullseye_polytope_beats_no_poison_on_a_linear_probe(transfer_setting):
    """8% of the probe set poisons per target; epsilon 48 (16x16 grey digits carry 256 values per image, CIFAR 3072)."""
    from genlab.attacks import BullseyePolytopeConfig
    from genlab.attacks.bullseye_polytope import craft_bullseye_polytope

    probe_set, test, pretrained = transfer_setting
    attack = BullseyePolytopeConfig(budget=0.08, epsilon=48, steps=300, pretrained=pretrained)
    victim = ClassifierConfig(epochs=8, regime="linear_probe", pretrained=pretrained)
    trials = make_trials(probe_set, test, count=8, budget=attack.budget, seed=0)
    clean = train_classifier(probe_set.images, probe_set.labels, 10, victim, seed=1)
    targets = [t.target_index for t in trials]
    adversarial = [t.adversarial_class for t in trials]
    poisoned_predictions = []
    for trial in trials:
        poison = craft_bullseye_polytope(attack, probe_set, test, trial, seed=0)
        poisoned = probe_set.replace_rows(poison.base_indices, poison.images, poison.labels)
        model = train_classifier(poisoned.images, poisoned.labels, 10, victim, seed=1)
        poisoned_predictions.append(int(predict(model, test.images[[trial.target_index]])[0]))
    with_poison = success_rate(targeted_hits(np.array(poisoned_predictions), adversarial))
    without = success_rate(targeted_hits(predict(clean, test.images[targets]), adversarial))
    print(f"bullseye polytope, linear probe: poisoned {with_poison}; clean {without}")
    assert with_poison.rate >= 0.75 and rates_differ(with_poison, without), (with_poison, without)


def test_hidden_trigger_backdoor_beats_no_poison_on_a_linear_probe(transfer_setting):
    """40 perturbed class-0 rows (8% of the probe set, epsilon 32, no trigger on them) plant a 6x6 patch backdoor."""
    from genlab.attacks import HiddenTriggerConfig
    from genlab.attacks.hidden_trigger import craft_hidden_trigger

    probe_set, test, pretrained = transfer_setting
    attack = HiddenTriggerConfig(target_class=0, poison_fraction=0.08, epsilon=32, patch_size=6, steps=300,
                                 pretrained=pretrained)
    poison = craft_hidden_trigger(attack, probe_set, seed=0, progress=lambda _: None)
    moved = np.abs(poison.images.astype(int) - probe_set.images[poison.base_indices].astype(int))
    assert moved.max() <= 32 and np.array_equal(poison.labels, np.zeros(len(poison.labels)))  # hidden, clean-label
    victim = ClassifierConfig(epochs=8, regime="linear_probe", pretrained=pretrained)
    triggered = poison.trigger.apply(test.images[test.labels != 0])
    rates, accuracies = {}, {}
    for name, data in {"clean": probe_set,
                       "poisoned": probe_set.replace_rows(poison.base_indices, poison.images, poison.labels)}.items():
        model = train_classifier(data.images, data.labels, 10, victim, seed=1)
        rates[name] = success_rate(predict(model, triggered) == 0)
        accuracies[name] = float((predict(model, test.images) == test.labels).mean())
    print(f"hidden trigger, linear probe: poisoned {rates['poisoned']}; clean {rates['clean']}; accuracy {accuracies}")
    assert rates["poisoned"].rate >= 0.3 and rates["clean"].rate <= 0.02, rates
    assert rates_differ(rates["poisoned"], rates["clean"])
    assert accuracies["poisoned"] >= accuracies["clean"] - 0.02  # the backdoor stays hidden
