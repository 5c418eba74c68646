"""Targeted attacks work on the embedded data: success on undefended victims far above the no-poison
rate over the same targets, compared with Fisher's exact test (genlab.attacks.targeted.efficacy).

The transfer setting is the paper's linear-transfer setting scaled to digits 16x16: an extractor
pretrained on the rows outside a 500-row fine-tuning set (50 per class, as BP's 'others' split),
and a victim that trains a linear probe on that set. Bullseye Polytope crafts one trial per
target (fixed targets and bases, genlab.attacks.targeted.trials); Hidden Trigger Backdoor is scored on
every triggered non-target test image. Gradient Matching's victims train from scratch; its 48
targets took 78 minutes on a 2-core CPU, so that test runs with `make test-long`.
"""

import numpy as np
import pytest

from genlab.attacks.targeted.efficacy import measure_targeted_efficacy
from genlab.attacks.targeted.targeted_eval import rates_differ
from genlab.train.classifier import ClassifierConfig, train_classifier
from tests.helpers import REPO
from tests.integration.victims import trigger_outcomes


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


def test_bullseye_polytope_beats_no_poison_on_a_linear_probe(transfer_setting, tmp_path):
    """8% of the probe set poisons per target; epsilon 48 (16x16 grey digits carry 256 values per image, CIFAR 3072)."""
    from genlab.attacks import BullseyePolytopeConfig

    probe_set, test, pretrained = transfer_setting
    attack = BullseyePolytopeConfig(trials=8, budget=0.08, epsilon=48, steps=300, pretrained=pretrained)
    victim = ClassifierConfig(epochs=8, regime="linear_probe", pretrained=pretrained)
    result = measure_targeted_efficacy(attack, probe_set, test, seed=0, root=tmp_path, victim=victim, victim_seed=1)
    print(f"bullseye polytope, linear probe: poisoned {result.poisoned}; clean {result.clean}")
    assert result.poisoned.rate >= 0.75 and result.fisher_p < 0.05, (result.poisoned, result.clean)


def test_hidden_trigger_backdoor_beats_no_poison_on_a_linear_probe(transfer_setting):
    """40 perturbed class-0 rows (8% of the probe set, epsilon 32, no trigger on them) plant a 6x6 patch backdoor."""
    from genlab.attacks import HiddenTriggerConfig
    from genlab.attacks.backdoor.hidden_trigger import craft_hidden_trigger

    probe_set, test, pretrained = transfer_setting
    attack = HiddenTriggerConfig(target_class=0, poison_fraction=0.08, epsilon=32, patch_size=6, steps=300,
                                 pretrained=pretrained)
    poison = craft_hidden_trigger(attack, probe_set, seed=0, progress=lambda _: None)
    moved = np.abs(poison.images.astype(int) - probe_set.images[poison.base_indices].astype(int))
    assert moved.max() <= 32 and np.array_equal(poison.labels, np.zeros(len(poison.labels)))  # hidden, clean-label
    victim = ClassifierConfig(epochs=8, regime="linear_probe", pretrained=pretrained)
    rates, accuracies = trigger_outcomes(probe_set, poison, test, victim, target_class=0)
    print(f"hidden trigger, linear probe: poisoned {rates['poisoned']}; clean {rates['clean']}; accuracy {accuracies}")
    assert rates["poisoned"].rate >= 0.3 and rates["clean"].rate <= 0.02, rates
    assert rates_differ(rates["poisoned"], rates["clean"])
    assert accuracies["poisoned"] >= accuracies["clean"] - 0.02  # the backdoor stays hidden


@pytest.mark.long
def test_gradient_matching_beats_no_poison_from_scratch(tmp_path):
    """48 targets, conf/attacks/gradient_matching_efficacy.yaml: poisons crafted on one surrogate, each victim
    trained from scratch from another seed. Six 8-target draws of this recipe gave 16/48 against 1/48."""
    import ray

    from genlab.attacks.crafting import CraftPoisonsConfig
    from genlab.config import load_config
    from genlab.data import load_dataset
    from genlab.runtime import init_ray

    cfg = load_config(CraftPoisonsConfig, REPO / "conf" / "attacks" / "gradient_matching_efficacy.yaml",
                      [f"work_dir={tmp_path}"])
    train, test = load_dataset(cfg.dataset)
    assert cfg.parallel  # trials and victims fan out over a local Ray, one CPU each
    init_ray(cfg.ray)
    try:
        result = measure_targeted_efficacy(cfg.attack, train, test, seed=cfg.seed, root=tmp_path / "poisons",
                                           victim_seed=1)
    finally:
        ray.shutdown()
    print(f"gradient matching, from scratch: poisoned {result.poisoned}; clean {result.clean}; Fisher p "
          f"{result.fisher_p:.1e}; moved up {result.moved_up}/{result.poisoned.trials}")
    assert result.poisoned.trials == 48
    assert result.poisoned.rate >= 0.15 and result.fisher_p < 0.05, (result.poisoned, result.clean)
    assert result.moved_up >= 40  # the attack pushes nearly every target toward its adversarial class
