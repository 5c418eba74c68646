"""Targeted attacks work on the embedded data: success on undefended victims far above the no-poison rate.

Each test crafts one trial per target (fixed targets and bases, genlab.attacks.trials), trains
the victim on the poisoned set and on the clean set, and compares the two success rates over
the same targets with Fisher's exact test (genlab.attacks.targeted_eval).
"""

import numpy as np
import pytest

from genlab.attacks.targeted_eval import rates_differ, success_rate, targeted_hits
from genlab.attacks.trials import make_trials
from genlab.train.classifier import ClassifierConfig, predict, train_classifier

pytestmark = pytest.mark.slow


def test_bullseye_polytope_beats_no_poison_on_a_linear_probe(digits, tmp_path):
    """The paper's linear-transfer setting scaled to digits: an extractor pretrained on the other
    rows, a linear probe fine-tuned on a 500-row set (50 per class, as BP's 'others' split), 8% of
    it poisons per target; epsilon 48 (16x16 grey digits carry 256 values per image, CIFAR 3072)."""
    from genlab.attacks import BullseyePolytopeConfig
    from genlab.attacks.bullseye_polytope import craft_bullseye_polytope
    from genlab.train.transfer import save_classifier

    full, test = digits
    probe_set, others = full.subset(np.arange(500)), full.subset(np.arange(500, len(full)))
    extractor_cfg = ClassifierConfig(epochs=8)
    extractor = train_classifier(others.images, others.labels, 10, extractor_cfg, seed=5)
    pretrained = str(save_classifier(tmp_path / "extractor", extractor, extractor_cfg, in_channels=1, num_classes=10))
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
