"""PureGen-DDPM and the PureGen combinations without real training: UNet, sampler, purifiers, checkpoints,
settings, training state (the training job and trained models: integration/test_ddpm.py). Torch runs
single-threaded: on a shared 2-core machine more threads only oversubscribe.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from purify_speed import compare_speed_paths, speed_loop

from genlab.checkpoints import save_model
from genlab.config import load_config, validate
from genlab.data.convert import to_pixels, to_tensor
from genlab.errors import CheckpointError, ConfigError
from genlab.models.ddpm import PAPER_UNET_32, DdpmNetConfig, build_unet
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.ddpm import DdpmPurifier, DdpmSettings, load_ddpm
from genlab.purify.ebm import EbmPurifier, EbmSettings
from genlab.purify.model_source import model_fingerprint
from genlab.purify.puregen import (
    EnergyModelSettings,
    EnergyScorer,
    PuregenFiltPurifier,
    PuregenFiltSettings,
    PuregenNaiveSettings,
    PuregenPurifier,
    PuregenRepsSettings,
    build_puregen,
    highest_energy_rows,
    repetition_seed,
)
from genlab.samplers.ddpm import DdpmSampler, make_scheduler, noise_std
from genlab.sweep.provisioning import DdpmJobConfig
from genlab.train.ddpm import DdpmTrainConfig, DdpmTrainer
from tests.damaged_checkpoints import assert_pickled_weights_refused, flip_a_weight_byte
from tests.fast_path import CUDA_RECIPE_ON_CPU
from tests.helpers import REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def tiny_unet(seed: int = 0) -> torch.nn.Module:
    """A real (untrained) diffusers UNet, small enough for unit tests."""
    torch.manual_seed(seed)
    return build_unet(DdpmNetConfig(block_out_channels=[8, 8], down_block_types=["DownBlock2D", "AttnDownBlock2D"],
                                    up_block_types=["AttnUpBlock2D", "UpBlock2D"], norm_num_groups=4)).eval()


class UnetCalls:
    """Records every call of a net: the timesteps it saw and its input batch."""

    def __init__(self, net: torch.nn.Module) -> None:
        self.timesteps: list[list[int]] = []
        self.inputs: list[torch.Tensor] = []
        net.register_forward_hook(self._record)

    def _record(self, module, args, output) -> None:
        x, timesteps = args
        self.inputs.append(x.detach().clone())
        self.timesteps.append(sorted(set(timesteps.tolist())))


# ---------------------------------------------------------------- UNet and sampler


def test_paper_unet_has_about_114m_parameters_and_the_cifar10_config_uses_it():
    net = build_unet(PAPER_UNET_32)
    assert 113e6 < sum(p.numel() for p in net.parameters()) < 115e6
    assert load_config(DdpmJobConfig, REPO / "conf" / "train_ddpm_cifar10.yaml").model == PAPER_UNET_32
    with pytest.raises(ConfigError, match="norm_num_groups"):
        validate(DdpmNetConfig, {"block_out_channels": [10, 16, 16]})
    with pytest.raises(ConfigError, match="attention_head_dim"):  # diffusers would divide by zero heads
        validate(DdpmNetConfig, {"block_out_channels": [4, 4, 4], "norm_num_groups": 2})


class FirstCall(Exception):
    """Raised by a hook to stop a chain at its first UNet call, carrying that call's input x_{t*}."""


def _stop_at_first_call(module, args):
    raise FirstCall(args[0])


@pytest.mark.parametrize("t_star,sigma", [(15, 0.063), (50, 0.173), (75, 0.250), (125, 0.395), (250, 0.692)])
def test_forward_jump_to_t_star_has_the_noise_level_the_schedule_predicts(t_star, sigma):
    net = tiny_unet()
    net.register_forward_pre_hook(_stop_at_first_call)
    x0 = torch.rand(256, 1, 16, 16) * 2 - 1
    with pytest.raises(FirstCall) as first:
        DdpmSampler(net).purify(x0, [t_star], seed=0, row_ids=np.arange(256))
    abar = float(make_scheduler().alphas_cumprod[t_star])
    residual = first.value.args[0] - abar ** 0.5 * x0  # the chain starts at x_{t*}; what is not signal is noise
    assert noise_std(t_star) == pytest.approx(sigma, abs=5e-4)  # the spec's table (puregen.md §3.3)
    assert float(residual.std()) == pytest.approx(sigma, rel=0.02)
    assert abs(float(residual.mean())) < 4 * sigma / residual.numel() ** 0.5


def test_reverse_chain_runs_exactly_t_star_steps_and_several_t_star_share_the_calls():
    net = tiny_unet()
    calls = UnetCalls(net)
    sampler = DdpmSampler(net)
    x0, rows = torch.rand(6, 1, 16, 16) * 2 - 1, np.arange(6)
    sampler.purify(x0, [7], seed=0, row_ids=rows)
    assert calls.timesteps == [[t] for t in range(6, -1, -1)]  # t* = 7: steps t = 6, ..., 0
    calls.timesteps.clear(), calls.inputs.clear()
    out = sampler.purify(x0, [5, 2], seed=0, row_ids=rows)
    assert calls.timesteps == [[t] for t in range(4, -1, -1)]  # one loop of max(t*) calls ...
    assert [len(x) for x in calls.inputs] == [6, 6, 6, 12, 12]  # ... the t* = 2 chains join at t = 1
    assert sampler.net_evaluations == 6 * 7 + 6 * (5 + 2)  # every chain ran exactly its t* steps
    torch.testing.assert_close(out[2], sampler.purify(x0, [2], seed=0, row_ids=rows)[2])  # other t* do not matter


@pytest.mark.parametrize("t", [0, 1, 74, 999])
def test_reverse_step_is_the_diffusers_scheduler_step(t):
    net = tiny_unet()
    sampler = DdpmSampler(net)
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    with torch.no_grad():
        eps = net(x, torch.full((3,), t))
        expected = make_scheduler().step(eps, t, x, generator=torch.Generator().manual_seed(5)).prev_sample
        noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(5))
        assert torch.equal(sampler.p_sample(x, t, noise), expected)


def test_purifier_is_seeded_per_row_and_returns_valid_pixels(tmp_path, digits):
    checkpoint = save_model(tmp_path / "ddpm", tiny_unet(), kind="ddpm")
    settings = DdpmSettings(diffusion_start_steps=[6, 3], checkpoint=str(checkpoint), batch_size=16, device="cpu")
    images, rows = digits[0].images[:40], np.arange(500, 540)
    out = DdpmPurifier(settings, seed=3).purify(images, rows)
    assert sorted(out) == [3, 6] and all(o.dtype == np.uint8 and o.shape == images.shape for o in out.values())
    again = DdpmPurifier(settings.model_copy(update={"batch_size": 7}), seed=3).purify(images[::-1], rows[::-1])
    assert np.abs(again[6][::-1].astype(int) - out[6].astype(int)).max() <= 1  # same row -> same chain, any batch
    other_seed = DdpmPurifier(settings, seed=4).purify(images, rows)
    assert (other_seed[6] != out[6]).mean() > 0.5
    assert (out[6] != images).mean() > 0.5
    retrained = save_model(tmp_path / "retrained", tiny_unet(seed=1), kind="ddpm")
    assert model_fingerprint(settings) != model_fingerprint(settings.model_copy(update={"checkpoint": str(retrained)}))


def test_the_cuda_recipes_bf16_arithmetic_leaves_purification_statistics_unchanged(tmp_path, digits):
    checkpoint = save_model(tmp_path / "ddpm", tiny_unet(), kind="ddpm")
    base = DdpmSettings(diffusion_start_steps=[20], checkpoint=str(checkpoint), device="cpu")
    fast = base.model_copy(update=CUDA_RECIPE_ON_CPU)
    stats = compare_speed_paths(speed_loop(base, "reference"), fast, digits[0].images[:64], np.arange(64))
    change = stats["reference_mean_abs_change"]
    assert change > 5 and stats["vs_reference_loop"] > 0
    assert abs(stats["optimized_mean_abs_change"] - change) < 0.02 * change  # the same amount of change
    assert stats["mean_abs_difference"] < 0.1 * change  # and nearly the same images


# ---------------------------------------------------------------- checkpoints and settings


def test_checkpoints_refuse_corrupt_pickled_foreign_and_mismatched_files(tmp_path):
    net = tiny_unet()
    good = save_model(tmp_path / "good", net, kind="ddpm")
    loaded = load_ddpm(good)
    assert all(torch.equal(a, b) for a, b in zip(loaded.state_dict().values(), net.state_dict().values()))

    corrupt = flip_a_weight_byte(save_model(tmp_path / "corrupt", net, kind="ddpm"))
    with pytest.raises(CheckpointError, match="corrupt"):
        DdpmPurifier(DdpmSettings(checkpoint=str(corrupt)), seed=0)

    assert_pickled_weights_refused(net, "ddpm", tmp_path, load_ddpm, load_ddpm)

    ebm = save_model(tmp_path / "ebm", build_ebm(EbmNetConfig(nf=4)), kind="ebm")
    with pytest.raises(CheckpointError, match="expected 'ddpm'"):
        load_ddpm(ebm)
    index = json.loads((good / "checkpoint.json").read_text())
    index["config"]["block_out_channels"] = [16, 16]
    (good / "checkpoint.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="do not fit"):
        load_ddpm(good)


def test_settings_validate_expand_and_name_their_outputs():
    assert DdpmSettings(diffusion_start_steps=[125, 75, 75]).snapshot_steps() == [75, 125]
    assert DdpmSettings().label(75) == "ddpm-t75"
    for bad in ({"diffusion_start_steps": [0]}, {"diffusion_start_steps": [1000]}, {"checkpoint": "a", "registered_model": "b"}):
        with pytest.raises(ConfigError):
            validate(DdpmSettings, bad)
    with pytest.raises(CheckpointError, match="jobs/train_ddpm.py"):
        DdpmPurifier(DdpmSettings(), seed=0)
    naive = PuregenNaiveSettings()
    assert (naive.ebm.langevin_steps, naive.ddpm.diffusion_start_steps, naive.reps) == ([150], [75], 1)  # [150, 75, 1]
    reps = PuregenRepsSettings(reps=[3, 5], ebm={"langevin_steps": [10, 20]})
    assert [s.label(50) for s in reps.settings()] == ["puregen-reps-E10-D50-R3", "puregen-reps-E20-D50-R3",
                                                      "puregen-reps-E10-D50-R5", "puregen-reps-E20-D50-R5"]
    with pytest.raises(ConfigError, match="reps"):
        validate(PuregenRepsSettings, {"reps": 1})
    filt = PuregenFiltSettings(filter_fraction=[0.3, 0.5])
    assert filt.snapshot_steps() == [125] and [s.label(125) for s in filt.settings()] == [
        "puregen-filt-k0.3-ddpm-t125", "puregen-filt-k0.5-ddpm-t125"]
    assert validate(PuregenFiltSettings, filt.model_dump(mode="json")) == filt  # survives the trip to a Ray actor
    with pytest.raises(ConfigError, match="filter_fraction"):
        validate(PuregenFiltSettings, {"filter_fraction": 1.0})


# ---------------------------------------------------------------- the combinations


@pytest.fixture
def tiny_models(tmp_path):
    """Checkpoints of a tiny random EBM and UNet (the combinations' plumbing does not need trained ones)."""
    torch.manual_seed(0)
    ebm = save_model(tmp_path / "ebm", build_ebm(EbmNetConfig(nf=4)), kind="ebm")
    return str(ebm), str(save_model(tmp_path / "ddpm", tiny_unet(), kind="ddpm"))


def test_naive_is_the_ebm_chain_then_the_ddpm_chain_and_reps_repeats_both(tiny_models, digits):
    ebm_path, ddpm_path = tiny_models
    images, rows = digits[0].images[:24], np.arange(24)
    ebm = EbmSettings(langevin_steps=[4], checkpoint=ebm_path, device="cpu")
    ddpm = DdpmSettings(diffusion_start_steps=[3, 5], checkpoint=ddpm_path, device="cpu")
    naive = build_puregen(PuregenNaiveSettings(ebm=ebm, ddpm=ddpm), seed=2)
    ebm_purifier, ddpm_purifier = EbmPurifier(ebm, seed=2), DdpmPurifier(ddpm, seed=2)
    x = to_tensor(images)
    after_ebm = ebm_purifier.sampler.run(x, steps=4, seed=2, row_ids=rows).snapshots[4]
    expected = ddpm_purifier.purify_tensor(after_ebm, rows)
    with torch.inference_mode():  # as a Ray Data actor runs it; the Langevin stage still gets input gradients
        got = naive.purify(images, rows)
    for t in (3, 5):
        assert np.abs(got[t].astype(int) - to_pixels(expected[t]).astype(int)).max() <= 1

    reps = build_puregen(PuregenRepsSettings(ebm=ebm, ddpm=ddpm, reps=2), seed=2)
    assert isinstance(reps, PuregenPurifier)
    second_seed = repetition_seed(2, 1)
    for t in (3, 5):  # repetition 2 continues each t* chain with fresh noise
        again = ebm_purifier.sampler.run(expected[t], steps=4, seed=second_seed, row_ids=rows).snapshots[4]
        want = to_pixels(ddpm_purifier.sampler.purify(again, [t], seed=second_seed, row_ids=rows)[t])
        assert np.abs(reps.purify(images, rows)[t].astype(int) - want.astype(int)).max() <= 1


def test_filt_purifies_exactly_the_highest_energy_fraction(tiny_models, digits):
    ebm_path, ddpm_path = tiny_models
    images, rows = digits[0].images[:30], np.arange(100, 130)
    transform = DdpmSettings(diffusion_start_steps=[4], checkpoint=ddpm_path, device="cpu")
    settings = PuregenFiltSettings(filter_fraction=0.4, energy_model=EnergyModelSettings(checkpoint=ebm_path),
                                   transform=transform)
    out = PuregenFiltPurifier(settings, seed=1).purify(images, rows)[4]
    energies = EnergyScorer(settings.energy_model).scores(images)
    chosen = highest_energy_rows(energies, 0.4)
    assert chosen.sum() == 12 and energies[chosen].min() >= energies[~chosen].max()
    assert np.array_equal(out[~chosen], images[~chosen])  # the low-energy rows stay raw
    # The sweep's two-phase route: purify every row with the transform, then merge by energy -> the same images.
    everything = DdpmPurifier(transform, seed=1).purify(images, rows)[4]
    assert np.abs(out[chosen].astype(int) - everything[chosen].astype(int)).max() <= 1
    assert (out[chosen] != images[chosen]).mean() > 0.5


# ---------------------------------------------------------------- training


def test_training_state_round_trip_continues_exactly(tmp_path, digits):
    cfg = DdpmTrainConfig(model=DdpmNetConfig(block_out_channels=[8, 8], down_block_types=["DownBlock2D"] * 2,
                                              up_block_types=["UpBlock2D"] * 2, norm_num_groups=4),
                          batch_size=8, iterations=4, warmup_steps=2, device="cpu")
    trainer = DdpmTrainer(cfg, to_tensor(digits[0].images[:40]), digits[0].images[:4])
    state = trainer.init_state()
    for _ in range(2):
        trainer.train_step(state)
    trainer.save_state(tmp_path / "state", state, run_id="run")
    restored, run_id = trainer.load_state(tmp_path / "state")
    assert run_id == "run" and restored.step == 2
    assert trainer.train_step(state) == trainer.train_step(restored)
    for a, b in zip(state.model.parameters(), restored.model.parameters()):
        assert torch.equal(a, b)
    other = DdpmTrainer(cfg.model_copy(update={"lr": 1.0}), trainer.data, trainer.preview)
    with pytest.raises(CheckpointError, match="config mismatch"):
        other.load_state(tmp_path / "state")
