"""The defense sweep's data rule and statistics: the disjoint-data ConfigErrors, summary.json's
generative_training block from the actual images, attack variants (target classes, targeted trials),
and each setting's n / 95% CI / max over classes (Clopper-Pearson for targeted attacks)."""

import numpy as np
import pytest
import torch

from genlab.attacks.crafting import CraftPoisonsConfig
from genlab.attacks.targeted.gradient_matching import differentiable_augment
from genlab.config import load_config, validate
from genlab.data.splits import DataSplitConfig, split_pool
from genlab.errors import ConfigError
from genlab.sweep.config import SweepConfig
from genlab.sweep.generative_data import generative_training_block, generative_training_set, row_statement
from genlab.sweep.report import aggregate
from genlab.sweep.trainable import classifier_seed
from genlab.sweep.training_sets import attack_variants
from tests.helpers import REPO

EBM = [{"name": "none"}, {"name": "ebm", "langevin_steps": [5]}]


@pytest.mark.parametrize("overrides, key", [
    ({"generative_dataset": {"name": "digits"}}, "generative_dataset"),
    ({"dataset": {"name": "cifar10"}, "generative_dataset": {"name": "cinic10"}}, "generative_dataset"),
    ({"generative_data": "same_as_classifier", "generative_dataset": {"name": "shapes"}}, "generative_dataset"),
    ({"target_classes": [0, 1], "attacks": [{"name": "blend", "target_class": 2}]}, "target_classes"),
    ({"target_classes": [1, 1]}, "target_classes"),
    ({"target_classes": [-1]}, "target_classes"),
    ({"split": {"generative_fraction": 0}}, "split.generative_fraction"),
])
def test_configs_that_would_break_the_data_rule_are_config_errors(overrides, key):
    with pytest.raises(ConfigError, match=key):
        validate(SweepConfig, overrides)


def test_cinic10_imagenet_part_is_a_valid_generative_dataset_for_cifar10_and_the_classifier_keeps_every_row(digits):
    cfg = validate(SweepConfig, {"dataset": {"name": "cifar10"},
                                 "generative_dataset": {"name": "cinic10", "cinic_part": "imagenet"}})
    assert cfg.generative_dataset.cinic_part == "imagenet"
    assert cfg.data_split().generative_fraction == 0  # the models learn from CINIC-10: no CIFAR-10 row set aside
    whole = split_pool(*digits, cfg.data_split())
    assert len(whole.generative) == 0 and len(whole.classifier) == len(digits[0])
    assert validate(SweepConfig, {}).data_split() == DataSplitConfig()  # no generative_dataset: the split as given


def _block(digits, **overrides):
    cfg = validate(SweepConfig, {"purifiers": EBM, **overrides})
    split = split_pool(*digits, DataSplitConfig())
    generative, description = generative_training_set(cfg, split, {})
    return generative_training_block(cfg, generative, description, split), split


def test_generative_training_block_counts_the_overlap_from_the_images(digits):
    disjoint, split = _block(digits)
    assert disjoint == {"ebm": {"dataset": "digits generative rows (split seed 0)", "rows": len(split.generative),
                                "overlap_with_classifier_train": 0, "overlap_with_test": 0,
                                "generative_data": "disjoint"}}
    ablation, _ = _block(digits, generative_data="same_as_classifier")
    assert ablation["ebm"]["overlap_with_classifier_train"] == len(split.classifier) == ablation["ebm"]["rows"]
    assert "ablation" in row_statement({"ebm"}, ablation) and row_statement(set(), ablation) == "-"


def test_a_generative_set_sharing_images_with_the_classifier_is_refused(digits):
    cfg = validate(SweepConfig, {"purifiers": EBM})
    split = split_pool(*digits, DataSplitConfig())
    leaked = split.classifier.subset(np.arange(3))
    with pytest.raises(ConfigError, match="shares 3 images"):
        generative_training_block(cfg, leaked, "leaked rows", split)


def test_a_given_model_is_stated_as_unchecked(digits):
    cfg = validate(SweepConfig, {"purifiers": [{"name": "ebm", "checkpoint": "somewhere"}]})
    split = split_pool(*digits, DataSplitConfig())
    block = generative_training_block(cfg, split.generative, "unused", split)
    assert block["ebm"]["rows"] is None and "not checked" in block["ebm"]["dataset"]


def test_attack_variants_per_target_class_and_per_targeted_trial():
    cfg = validate(SweepConfig, {"target_classes": [0, 3], "attacks": [
        {"name": "blend"}, {"name": "gradient_matching", "trials": 2}]})
    assert attack_variants(cfg) == {"blend-class0": "blend", "blend-class3": "blend",
                                    "gradient_matching-trial0": "gradient_matching",
                                    "gradient_matching-trial1": "gradient_matching"}
    assert classifier_seed(0, "blend-class0") != classifier_seed(0, "blend-class3")  # a seed per victim
    assert list(attack_variants(validate(SweepConfig, {}))) == ["badnets", "blend"]


def _row(attack, purifier, target_class, seed, accuracy, success, **extra):
    return {"attack": attack, "purifier": purifier, "purifier_params": {}, "target_class": target_class, "seed": seed,
            "natural_accuracy": accuracy, "poison_success_rate": success, "purify_images_per_s": None,
            "status": "FINISHED", "stopped_early": False, **extra}


def test_backdoor_cells_carry_n_a_t_interval_and_the_worst_class():
    rows = [_row("blend", "none", c, 0, 0.95, s) for c, s in ((0, 0.9), (1, 1.0), (2, 0.8))]
    rows += [_row("blend", "ebm", c, 0, 0.94, s) for c, s in ((0, 0.1), (1, 0.3), (2, 0.2))]
    none, ebm = aggregate(rows)
    assert none["n"] == 3 and none["poison_success_rate_mean"] == pytest.approx(0.9)
    assert 0 <= none["ci_low"] < 0.9 < none["ci_high"] == 1.0  # clipped to [0, 1]
    assert ebm["max_over_classes"] == pytest.approx(0.3) and ebm["target_classes"] == [0, 1, 2]
    assert ebm["success_ratio"] == pytest.approx(0.2 / 0.9) and ebm["accuracy_loss_points"] == pytest.approx(1.0)
    assert ebm["halves"] is True


def test_targeted_cells_count_successes_with_a_clopper_pearson_interval():
    rows = [_row("gradient_matching", "none", None, 0, 0.9, float(k < 3), targets=1) for k in range(10)]
    (cell,) = aggregate(rows)
    assert (cell["successes"], cell["n"]) == (3, 10) and cell["ci_method"] == "clopper-pearson"
    assert cell["ci_low"] == pytest.approx(0.0667, abs=1e-3) and cell["ci_high"] == pytest.approx(0.6525, abs=1e-3)


def test_gradient_matching_augmentation_is_differentiable_and_moves_pixels():
    images = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = differentiable_augment(images, 2, True, torch.Generator().manual_seed(3))
    assert out.shape == images.shape and not torch.equal(out, images)
    out.sum().backward()
    assert images.grad is not None and images.grad.abs().sum() > 0


def test_the_targeted_sweep_runs_the_efficacy_recipe_against_a_victim_seeded_apart():
    sweep = load_config(SweepConfig, REPO / "conf/defense_sweep_targeted.yaml")
    recipe = load_config(CraftPoisonsConfig, REPO / "conf/attacks/gradient_matching_efficacy.yaml").attack
    (attack,) = sweep.attacks
    assert attack.model_dump(exclude={"trials"}) == recipe.model_dump(exclude={"trials"})
    assert sweep.classifier == recipe.surrogate  # the victim the recipe is measured against
    assert attack.surrogate_seed not in sweep.seeds
