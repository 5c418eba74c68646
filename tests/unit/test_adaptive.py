"""genlab.sweep.adaptive: the BPDA and EOT wrappers, the purifier transforms, the sanity checks, the aware-Narcissus hook."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from genlab.attacks.backdoor.narcissus import NarcissusAwareConfig, craft_narcissus, optimise_trigger
from genlab.checkpoints import save_model
from genlab.data.imageset import ImageSet
from genlab.errors import ConfigError
from genlab.models.ddpm import DdpmNetConfig, build_unet
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.baselines import NoneSettings
from genlab.purify.ebm import EBM_KIND, EbmSettings
from genlab.sweep.adaptive.aware import compare_triggers
from genlab.sweep.adaptive.eot import PurifiedClassifier, bpda
from genlab.sweep.adaptive.robustness import AttackSpec, accuracy, robust_accuracy
from genlab.sweep.adaptive.sanity import noise_margin, robust_below_clean, stronger_not_better, unbounded_breaks
from genlab.sweep.adaptive.transforms import DdpmTransform, LangevinTransform, QuantizeTransform
from genlab.sweep.config import SweepConfig
from genlab.sweep.training_sets import poison_for


def _energy_net() -> nn.Module:
    torch.manual_seed(0)
    return build_ebm(EbmNetConfig(nf=4)).eval().requires_grad_(False)


class _Brightness(nn.Module):
    """A fixed two-class classifier of [0, 255] images: class 1 when the mean pixel is above 127.5."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.tensor(0.1), requires_grad=False)

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        score = self.scale * (pixels.mean(dim=(1, 2, 3)) - 127.5)
        return torch.stack([-score, score], dim=1)


def _brightness_data(count: int = 32) -> tuple[torch.Tensor, torch.Tensor]:
    """Images whose mean pixel is 0.3 or 0.7 (of 1), labelled by which."""
    labels = torch.arange(count) % 2
    images = (0.3 + 0.4 * labels.float()).view(-1, 1, 1, 1).expand(count, 1, 8, 8).clone()
    return images, labels


def test_bpda_gradient_equals_the_identitys():
    transform = LangevinTransform(_energy_net(), steps=3, seed=0)
    x = torch.rand(4, 1, 16, 16, requires_grad=True)
    weights = torch.randn(4, 1, 16, 16)
    (weights * bpda(transform, x)).sum().backward()
    identity = x.detach().clone().requires_grad_(True)
    (weights * identity).sum().backward()
    assert torch.equal(x.grad, identity.grad)
    assert not torch.equal(bpda(transform, x), x)  # the forward pass is the purifier, not the identity


def test_full_gradient_flows_through_the_langevin_chain_and_matches_the_black_box_forward():
    x = torch.rand(2, 1, 16, 16, requires_grad=True)
    graph = LangevinTransform(_energy_net(), steps=3, differentiable=True, seed=5)(x)
    black_box = LangevinTransform(_energy_net(), steps=3, differentiable=False, seed=5)(x)
    torch.testing.assert_close(graph, black_box)
    graph.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.allclose(x.grad, torch.ones_like(x.grad))  # not the identity's gradient


def test_eot_averages_over_the_purifiers_randomness():
    x = torch.rand(3, 1, 16, 16)
    first, second = LangevinTransform(_energy_net(), steps=2, seed=0), LangevinTransform(_energy_net(), steps=2, seed=1)
    assert not torch.allclose(first(x), second(x))  # two seeds: different draws
    again = LangevinTransform(_energy_net(), steps=2, seed=0)
    assert not torch.allclose(again(x), again(x))  # every call is a fresh draw
    classifier = nn.Sequential(nn.Flatten(), nn.Linear(256, 3)).requires_grad_(False)
    eot = PurifiedClassifier(classifier, LangevinTransform(_energy_net(), steps=2, seed=7), samples=3)
    draws = LangevinTransform(_energy_net(), steps=2, seed=7)
    expected = torch.stack([classifier(255.0 * draws(x)) for _ in range(3)]).mean(0)
    torch.testing.assert_close(eot(x), expected)


def test_ddpm_transform_draws_differ_by_seed_and_stay_in_range():
    torch.manual_seed(0)
    unet = build_unet(DdpmNetConfig(sample_size=8, block_out_channels=[8, 8], down_block_types=["DownBlock2D"] * 2,
                                    up_block_types=["UpBlock2D"] * 2, norm_num_groups=2)).eval().requires_grad_(False)
    x = torch.rand(2, 1, 8, 8)
    a, b = DdpmTransform(unet, start_step=3, seed=0)(x), DdpmTransform(unet, start_step=3, seed=1)(x)
    assert not torch.allclose(a, b) and a.min() >= 0 and a.max() <= 1


def test_planted_gradient_masking_is_caught_by_the_unbounded_check():
    images, labels = _brightness_data()
    unbounded = AttackSpec(name="pgd", epsilons=[1.0], steps=10, random_start=False)
    masked = PurifiedClassifier(_Brightness(), QuantizeTransform(levels=4), gradient="full")
    assert accuracy(masked, images, labels) == 1.0
    outcome = robust_accuracy(unbounded, 1.0, masked, masked, images, labels, num_classes=2, seed=0)
    assert not unbounded_breaks(outcome.robust_accuracy).passed  # zero gradients: the attack goes nowhere
    honest = PurifiedClassifier(_Brightness(), QuantizeTransform(levels=4), gradient="bpda")
    outcome = robust_accuracy(unbounded, 1.0, honest, honest, images, labels, num_classes=2, seed=0)
    assert unbounded_breaks(outcome.robust_accuracy).passed  # BPDA through the same transform breaks it


def test_sanity_checks_flag_what_exceeds_noise():
    assert noise_margin(0.5, 100) == pytest.approx(0.11)
    assert robust_below_clean(0.8, {"pgd": 0.7}, 100).passed
    assert not robust_below_clean(0.5, {"pgd": 0.9}, 100).passed
    assert stronger_not_better(0.4, {"pgd-s20": 0.45}, 100).passed  # within noise
    assert not stronger_not_better(0.2, {"pgd-s20": 0.6}, 100).passed


def test_attack_spec_reads_fractions_and_counts_autoattack_eot():
    spec = AttackSpec(name="pgd", epsilons=["8/255", 0.5], eot_samples=2)
    assert spec.epsilons == [pytest.approx(8 / 255), 0.5] and spec.wrapper_samples() == 2
    assert AttackSpec(name="autoattack_rand", epsilons=["8/255"], eot_samples=20).wrapper_samples() == 1
    with pytest.raises(ValueError):
        AttackSpec(name="pgd", epsilons=[0])


def test_aware_narcissus_needs_the_purifier_and_its_trigger_sees_it():
    train = ImageSet(np.zeros((20, 8, 8, 1), dtype=np.uint8), np.arange(20) % 2, ["a", "b"])
    with pytest.raises(ConfigError, match="list it in a defense sweep"):
        craft_narcissus(NarcissusAwareConfig(target_class=0), train, seed=0)
    surrogate = nn.Sequential(nn.Flatten(), nn.Linear(64, 2)).requires_grad_(False)
    images = np.random.default_rng(0).integers(0, 256, (16, 8, 8, 1), dtype=np.uint8)
    cfg = NarcissusAwareConfig(trigger_steps=3, trigger_batch_size=8)
    seen = []
    blind = optimise_trigger(cfg, surrogate, images, 1, 0, lambda line: None,
                             transform=lambda pixels: seen.append(pixels.shape) or pixels * 0)
    assert len(seen) == 3 and not blind.any()  # the surrogate saw only the transform's output: no gradient to delta
    assert optimise_trigger(cfg, surrogate, images, 1, 0, lambda line: None).any()


def test_compare_triggers_averages_over_classes_x1_and_x3():
    rows = [{"attack": "narcissus", "purifier": "ebm-T150", "target_class": c, "poison_success_rate": p,
             "poison_success_rate_amplified": p3, "natural_accuracy": 0.9} for c, p, p3 in ((0, 0.2, 0.5), (1, 0.6, 1.0))]
    (entry,) = compare_triggers(rows)
    assert entry["poison_success_mean"] == pytest.approx(0.4) and entry["poison_success_max"] == 0.6
    assert entry["poison_success_amplified_mean"] == pytest.approx(0.75) and entry["poison_success_amplified_max"] == 1.0
    assert entry["classes"] == [0, 1]
    (plain,) = compare_triggers([{k: v for k, v in row.items() if k != "poison_success_rate_amplified"} for row in rows])
    assert "poison_success_amplified_mean" not in plain  # a set scored x1 only has no x3 columns


def test_autoattack_rand_breaks_a_classifier_within_its_budget_and_the_sweep_takes_aware_attacks():
    images, labels = _brightness_data(8)
    model = PurifiedClassifier(_Brightness(), QuantizeTransform(levels=256), gradient="bpda")
    spec = AttackSpec(name="autoattack_rand", epsilons=[0.25], steps=3, eot_samples=2)
    assert robust_accuracy(spec, 0.25, model, model, images, labels, num_classes=2, seed=0).robust_accuracy == 0.0
    cfg = SweepConfig(attacks=[{"name": "narcissus"}, {"name": "narcissus_ebm_aware", "purifier_steps": 50}])
    assert [a.name for a in cfg.attacks] == ["narcissus", "narcissus_ebm_aware"]


def test_the_sweeps_crafting_step_crafts_an_aware_attack_through_its_provisioned_purifier(tmp_path, capsys):
    checkpoint = str(save_model(tmp_path / "models" / "ebm", _energy_net(), kind=EBM_KIND))
    provisioned = [NoneSettings(), EbmSettings(checkpoint=checkpoint, langevin_steps=[150])]
    tiny = {"poison_fraction": 0.1, "pood_samples_per_class": 10, "surrogate": {"epochs": 1, "width": 4},
            "trigger_steps": 2, "trigger_batch_size": 8}
    sweep = SweepConfig(attacks=[{"name": "narcissus_ebm_aware", "purifier_steps": 2, **tiny},
                                 {"name": "narcissus", **tiny}])
    rng = np.random.default_rng(0)
    train = ImageSet(rng.integers(0, 256, (40, 16, 16, 1), dtype=np.uint8), np.arange(40) % 2, ["a", "b"])
    test = ImageSet(rng.integers(0, 256, (8, 16, 16, 1), dtype=np.uint8), np.arange(8) % 2, ["a", "b"])
    cache = tmp_path / "poisons"
    aware = poison_for(sweep, sweep.attacks[0], provisioned, train, test, cache)
    assert aware.attack == "narcissus_ebm_aware" and aware.config["purifier_checkpoint"] == checkpoint
    plain = poison_for(sweep, sweep.attacks[1], provisioned, train, test, cache)
    assert np.array_equal(aware.base_indices, plain.base_indices)  # same rows and surrogate: only the purifier differs
    assert not np.allclose(aware.trigger.delta, plain.trigger.delta)
    capsys.readouterr()
    named = sweep.attacks[0].model_copy(update={"purifier_checkpoint": checkpoint})  # as aware_poisons.py's sweeps name it
    assert np.array_equal(poison_for(sweep, named, [], train, test, cache).images, aware.images)
    assert "reusing the crafted set" in capsys.readouterr().out
    with pytest.raises(ConfigError, match="narcissus_ebm_aware: no ebm purifier"):
        poison_for(sweep, sweep.attacks[0], [NoneSettings()], train, test, cache)
