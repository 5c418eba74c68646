"""PureGen-EBM without real training: energy nets, the Langevin sampler, the purifier, checkpoints, training
state and configs (the training job and a trained EBM: integration/test_ebm.py).
Torch runs single-threaded here: on a shared 2-core machine extra threads only oversubscribe.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from purify_speed import compare_speed_paths, speed_loop

from genlab.checkpoints import load_checkpoint, save_model
from genlab.config import load_config, validate
from genlab.data.convert import to_tensor
from genlab.errors import CheckpointError, ConfigError
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.diagnostics import drift_along_trigger
from genlab.purify.ebm import EbmPurifier, EbmSettings, load_ebm
from genlab.purify.model_source import model_fingerprint
from genlab.samplers.langevin import LangevinSampler
from genlab.sweep.provisioning import EbmJobConfig
from genlab.train.ebm import EbmTrainConfig, EbmTrainer, make_optimizer
from tests.damaged_checkpoints import assert_pickled_weights_refused, flip_a_weight_byte
from tests.energy_nets import EPS, zero_energy_net
from tests.fast_path import CUDA_RECIPE_ON_CPU
from tests.helpers import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ---------------------------------------------------------------- energy nets


@pytest.mark.parametrize("arch", ["conv", "resnet"])
@pytest.mark.parametrize("channels,size", [(1, 16), (3, 32), (3, 64), (1, 8)])
def test_energy_nets_give_one_finite_scalar_per_image(arch, channels, size):
    net = build_ebm(EbmNetConfig(arch=arch, channels=channels, nf=8))
    energy = net(torch.rand(5, channels, size, size) * 2 - 1)
    assert energy.shape == (5,) and torch.isfinite(energy).all()
    assert not any(isinstance(m, (torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.LayerNorm)) for m in net.modules())
    biases = [m.bias for m in net.modules() if isinstance(m, torch.nn.Conv2d) and m.bias is not None]
    assert biases and all(float(b.detach().abs().max()) == 0.0 for b in biases)  # Xavier weights, zero biases


def test_paper_resnet_ebm_has_about_1_05m_parameters():
    net = build_ebm(EbmNetConfig(arch="resnet", channels=3, nf=128))
    assert 1.04e6 < sum(p.numel() for p in net.parameters()) < 1.06e6


# ---------------------------------------------------------------- Langevin sampler


def test_zero_energy_chain_moves_pixels_by_exactly_the_noise_statistics():
    x0 = torch.rand(128, 1, 16, 16) * 2 - 1
    sampler = LangevinSampler(zero_energy_net(), step_size=EPS, temperature=1e-4)
    chain = sampler.run(x0, steps=[1, 16, 64], seed=7, row_ids=np.arange(128))
    for steps, x in chain.snapshots.items():
        moved = (x - x0).flatten()
        expected = EPS * math.sqrt(steps)  # a random walk of `steps` N(0, eps^2) increments
        assert abs(float(moved.std()) / expected - 1) < 0.015
        assert abs(float(moved.mean())) < 4 * expected / math.sqrt(moved.numel())
    assert chain.gradient_evaluations == 128 * 64 == sampler.gradient_evaluations
    rows = (chain.snapshots[64] - x0).flatten(1)
    assert abs(float(torch.corrcoef(rows[:2])[0, 1])) < 0.2  # rows get independent noise


def test_snapshots_of_one_chain_equal_separate_chains_and_batching_does_not_matter():
    torch.manual_seed(0)
    sampler = LangevinSampler(build_ebm(EbmNetConfig(nf=4)).eval(), step_size=EPS, temperature=1e-4)
    x0, rows = torch.rand(6, 1, 16, 16) * 2 - 1, np.arange(100, 106)
    together = sampler.run(x0, steps=[3, 7, 12], seed=1, row_ids=rows).snapshots
    for steps in (3, 7, 12):
        assert torch.equal(together[steps], sampler.run(x0, steps=steps, seed=1, row_ids=rows).snapshots[steps])
    halves = [sampler.run(x0[part], steps=12, seed=1, row_ids=rows[part]).snapshots[12] for part in (slice(0, 2), slice(2, 6))]
    torch.testing.assert_close(torch.cat(halves), together[12], rtol=0, atol=1e-5)
    other_seed = sampler.run(x0, steps=12, seed=2, row_ids=rows).snapshots[12]
    assert not torch.allclose(other_seed, together[12])


def test_purifier_is_seeded_per_row_and_returns_valid_pixels(tmp_path, digits):
    checkpoint = save_model(tmp_path / "first", build_ebm(EbmNetConfig(nf=4)), kind="ebm")
    settings = EbmSettings(langevin_steps=[20, 5], checkpoint=str(checkpoint), batch_size=16, device="cpu")
    images, rows = digits[0].images[:40], np.arange(500, 540)
    out = EbmPurifier(settings, seed=3).purify(images, rows)
    assert sorted(out) == [5, 20] and all(o.dtype == np.uint8 and o.shape == images.shape for o in out.values())
    purifier = EbmPurifier(settings, seed=3)
    with torch.inference_mode():  # as a Ray Data actor's __call__ may run it; Langevin still gets input gradients
        again = purifier.purify(images[::-1], rows[::-1])
    assert np.abs(again[20][::-1].astype(int) - out[20].astype(int)).max() <= 1  # same row -> same chain
    assert (out[20] != images).mean() > 0.5
    retrained = save_model(tmp_path / "ebm", build_ebm(EbmNetConfig(nf=4)), kind="ebm")
    assert model_fingerprint(settings) != model_fingerprint(settings.model_copy(update={"checkpoint": str(retrained)}))


def test_the_cuda_recipes_bf16_arithmetic_leaves_purification_statistics_unchanged(tmp_path, digits):
    torch.manual_seed(0)
    net = build_ebm(EbmNetConfig(nf=8))
    net.layers[-1].weight.data *= 10  # a steeper energy: a drift as large as a trained EBM's, for bf16 to round
    checkpoint = save_model(tmp_path / "ebm", net, kind="ebm")
    base = EbmSettings(langevin_steps=[10, 30], checkpoint=str(checkpoint), device="cpu")
    reference = speed_loop(base, "reference")
    assert (reference.precision, reference.channels_last, reference.compile, reference.batch_size) == ("fp32", False, False, 128)
    images, rows = digits[0].images[:64], np.arange(64)
    sampler = EbmPurifier(reference, seed=0).sampler
    drift = float((EPS ** 2 / 2) * sampler.energy_gradient(to_tensor(images)).abs().mean())
    assert drift > 0.2 * EPS  # the random net's drift is comparable to the noise: bf16 rounding acts on it
    fast = base.model_copy(update=CUDA_RECIPE_ON_CPU)
    stats = compare_speed_paths(reference, fast, images, rows)
    change = stats["reference_mean_abs_change"]
    assert change > 2 and stats["vs_reference_loop"] > 0
    assert abs(stats["optimized_mean_abs_change"] - change) < 0.02 * change  # the same amount of change
    assert stats["mean_abs_difference"] < 0.1 * change  # and nearly the same images


# ---------------------------------------------------------------- checkpoints


def test_checkpoints_refuse_corrupt_pickled_and_mismatched_files(tmp_path):
    net = build_ebm(EbmNetConfig(nf=4))
    good = save_model(tmp_path / "good", net, kind="ebm")
    assert torch.equal(load_ebm(good).layers[0].weight, net.layers[0].weight)

    corrupt = flip_a_weight_byte(save_model(tmp_path / "corrupt", net, kind="ebm"))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_ebm(corrupt)

    broken_index = save_model(tmp_path / "index", net, kind="ebm")
    (broken_index / "checkpoint.json").write_text('{"format": "genlab-checkp')
    with pytest.raises(CheckpointError, match="corrupt, not valid JSON"):
        load_ebm(broken_index)

    assert_pickled_weights_refused(net, "ebm", tmp_path, load_ebm,
                                   lambda path: EbmPurifier(EbmSettings(checkpoint=str(path)), seed=0))

    with pytest.raises(CheckpointError, match="config mismatch.*nf"):
        load_checkpoint(good, kind="ebm", expected_config=EbmNetConfig(nf=8))
    index = json.loads((good / "checkpoint.json").read_text())
    index["config"]["nf"] = 8
    (good / "checkpoint.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_ebm(good)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        load_ebm(tmp_path / "absent")


def test_training_state_round_trip_continues_exactly(tmp_path):
    cfg = EbmTrainConfig(model=EbmNetConfig(nf=4), batch_size=8, bank_size=16, langevin_steps=3, iterations=4, device="cpu")
    data = torch.rand(40, 1, 16, 16) * 2 - 1
    trainer = EbmTrainer(cfg, data, np.zeros((2, 16, 16, 1), dtype=np.uint8))
    state = trainer.init_state()
    for _ in range(2):
        trainer.train_step(state)
    trainer.save_state(tmp_path / "state", state, run_id="run")
    restored_trainer = EbmTrainer(cfg, data, trainer.preview)
    restored, run_id = restored_trainer.load_state(tmp_path / "state")
    assert run_id == "run" and restored.step == 2
    assert trainer.train_step(state) == restored_trainer.train_step(restored)
    assert torch.equal(state.bank, restored.bank)
    for a, b in zip(state.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
    with pytest.raises(CheckpointError, match="config mismatch"):
        EbmTrainer(cfg.model_copy(update={"lr": 1.0}), data, trainer.preview).load_state(tmp_path / "state")


# ---------------------------------------------------------------- configs


def test_configs_load_and_settings_validate():
    job_config = EbmJobConfig
    paper = load_config(job_config, REPO / "conf" / "train_ebm_cifar10.yaml")
    assert (paper.model.arch, paper.model.nf, paper.langevin_steps, paper.bank_size) == ("resnet", 128, 100, 10000)
    poisoned = load_config(job_config, REPO / "conf" / "train_ebm.yaml", ["poison={name: blend, epsilon: 16}"])
    assert poisoned.poison.epsilon == 16
    with pytest.raises(ConfigError, match="model.nf"):
        load_config(job_config, REPO / "conf" / "train_ebm.yaml", ["model.nf=0"])
    settings = EbmSettings(langevin_steps=[300, 150, 150])
    assert settings.snapshot_steps() == [150, 300] and settings.label(150) == "ebm-T150"
    assert validate(EbmSettings, {"registered_model": "genlab-ebm-digits", "model_version": 1}).model_version == 1
    with pytest.raises(ConfigError, match="not both"):
        validate(EbmSettings, {"checkpoint": "x", "registered_model": "y"})
    with pytest.raises(CheckpointError, match="jobs/train_ebm.py"):
        EbmPurifier(settings, seed=0)


def test_paper_values_config_trains_with_sgd_from_a_uniform_noise_bank():
    paper = load_config(EbmJobConfig, REPO / "conf" / "train_ebm_paper.yaml")
    assert (paper.optimizer, paper.lr, paper.iterations, paper.data_noise, paper.step_size, paper.langevin_steps,
            paper.bank_init) == ("sgd", 5e-5, 150_000, 0.02, 0.01, 100, "uniform_noise")  # spec §2.2, Alg. 2
    assert (paper.model.arch, paper.model.nf) == ("resnet", 128)
    code = load_config(EbmJobConfig, REPO / "conf" / "train_ebm_cifar10.yaml")
    assert (code.optimizer, code.lr, code.bank_init) == ("adam", 1e-4, "data")
    assert type(make_optimizer(paper, build_ebm(paper.model))) is torch.optim.SGD
    with pytest.raises(ConfigError, match="optimizer"):
        load_config(EbmJobConfig, REPO / "conf" / "train_ebm_paper.yaml", ["optimizer=rmsprop"])
    # The same switches at toy size: the bank starts as noise, and one step is w <- w - lr * grad exactly.
    cfg = paper.model_copy(update={"model": EbmNetConfig(nf=4), "batch_size": 4, "bank_size": 8, "langevin_steps": 2,
                                   "device": "cpu", "dataset": paper.dataset.model_copy(update={"name": "digits"})})
    data = torch.rand(20, 1, 16, 16) * 2 - 1
    trainer = EbmTrainer(cfg, data, np.zeros((2, 16, 16, 1), dtype=np.uint8))
    state = trainer.init_state()
    assert state.bank.min() >= -1 and state.bank.max() <= 1 and float(state.bank.std()) > 0.5  # U(-1, 1), not data
    before = [p.detach().clone() for p in state.model.parameters()]
    trainer.train_step(state)
    for old, new in zip(before, state.model.parameters()):
        torch.testing.assert_close(new.detach(), old - cfg.lr * new.grad, rtol=1e-5, atol=1e-7)


class _QuadraticWell(torch.nn.Module):
    """G(x) = |x - center|^2 / 2 per image: its gradient at center + d is d."""

    def __init__(self, center: torch.Tensor) -> None:
        super().__init__()
        self.center = torch.nn.Parameter(center, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.center).flatten(1).pow(2).sum(1) / 2


def test_drift_along_trigger_is_the_step_share_the_energy_takes_back():
    rng = np.random.default_rng(0)
    images = rng.integers(40, 215, size=(4, 8, 8, 1), dtype=np.uint8)
    triggered = (images.astype(np.int16) + rng.choice([-30, 30], size=(8, 8, 1))).astype(np.uint8)
    well = LangevinSampler(_QuadraticWell(to_tensor(images)), step_size=EPS, temperature=1e-4)
    # A well centred on the clean images pulls straight back along the trigger: (eps^2 / 2) / tau of it per step.
    assert drift_along_trigger(well, images, triggered) == pytest.approx(EPS ** 2 / 2 / 1e-4, rel=1e-5)
    flat = LangevinSampler(zero_energy_net(), step_size=EPS, temperature=1e-4)
    assert drift_along_trigger(flat, images, triggered) == 0.0
