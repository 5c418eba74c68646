"""PureGen-EBM: energy nets, the Langevin sampler, checkpoints, the training job and the purifier.

The slow tests share one EBM trained by the real job with conf/train_ebm.yaml (digits 16x16,
a few CPU minutes), killed after its first checkpoint and restarted (the session fixture
`trained_ebm` in conftest.py, shared with test_ddpm.py), so one training run checks kill/resume,
the registry and, most of all, that the purifier defeats the blend attack.
Torch runs single-threaded here: on a shared 2-core machine extra threads only oversubscribe.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from mlflow.tracking import MlflowClient

from genlab.checkpoints import load_checkpoint, save_model
from genlab.config import load_config, validate
from genlab.data.convert import to_tensor
from genlab.errors import CheckpointError, ConfigError
from genlab.models.ebm import EbmNetConfig, build_ebm
from genlab.purify.ebm import EbmPurifier, EbmSettings, load_ebm, model_fingerprint, resolve_ebm_checkpoint
from genlab.purify.speed import compare_speed_paths, speed_loop
from genlab.samplers.langevin import LangevinSampler
from genlab.sweep.provisioning import EbmJobConfig
from genlab.train.ebm import EbmTrainConfig, EbmTrainer, make_optimizer

from conftest import EBM_PURIFY_T, blend_outcome

REPO = Path(__file__).resolve().parents[1]
EPS = 1.25e-2  # the spec's Langevin step size, [-1,1] units


@pytest.fixture(autouse=True)
def one_thread():
    """Run torch single-threaded for each test here, then restore the thread count."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def zero_energy_net() -> torch.nn.Module:
    """A real conv EBM with every weight zeroed: G(x) = 0 everywhere, so its gradient is exactly 0."""
    net = build_ebm(EbmNetConfig(nf=4))
    for param in net.parameters():
        param.data.zero_()
    return net.eval().requires_grad_(False)


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


def test_speed_options_leave_purification_statistics_unchanged(tmp_path, digits):
    torch.manual_seed(0)
    net = build_ebm(EbmNetConfig(nf=8))
    net.layers[-1].weight.data *= 10  # a steeper energy: a drift as large as a trained EBM's, for bf16 to round
    checkpoint = save_model(tmp_path / "ebm", net, kind="ebm")
    base = EbmSettings(langevin_steps=[10, 30], checkpoint=str(checkpoint), device="cpu")
    fast = speed_loop(base, "optimized")
    assert (fast.precision, fast.channels_last, fast.compile, fast.batch_size) == ("bf16", True, True, 4096)
    reference = speed_loop(base, "reference")
    assert (reference.precision, reference.channels_last, reference.compile, reference.batch_size) == ("fp32", False, False, 128)
    images, rows = digits[0].images[:64], np.arange(64)
    sampler = EbmPurifier(reference, seed=0).sampler
    drift = float((EPS ** 2 / 2) * sampler.energy_gradient(to_tensor(images)).abs().mean())
    assert drift > 0.2 * EPS  # the random net's drift is comparable to the noise: bf16 rounding acts on it
    fast = fast.model_copy(update={"compile": False})  # compiling costs minutes on 2 CPU cores
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

    corrupt = save_model(tmp_path / "corrupt", net, kind="ebm")
    raw = bytearray((corrupt / "model.safetensors").read_bytes())
    raw[-5] ^= 0xFF
    (corrupt / "model.safetensors").write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="corrupt"):
        load_ebm(corrupt)

    broken_index = save_model(tmp_path / "index", net, kind="ebm")
    (broken_index / "checkpoint.json").write_text('{"format": "genlab-checkp')
    with pytest.raises(CheckpointError, match="corrupt, not valid JSON"):
        load_ebm(broken_index)

    marker = tmp_path / "unpickled.txt"  # created only if something unpickles the payload

    class Payload:
        def __reduce__(self):
            return open, (str(marker), "w")

    pickled = save_model(tmp_path / "pickled", net, kind="ebm")
    (pickled / "model.safetensors").write_bytes(pickle.dumps({"weight": Payload()}, protocol=4))
    with pytest.raises(CheckpointError, match="pickled"):
        load_ebm(pickled)
    torch.save(net.state_dict(), tmp_path / "weights.pt")
    with pytest.raises(CheckpointError, match="pickled"):
        EbmPurifier(EbmSettings(checkpoint=str(tmp_path / "weights.pt")), seed=0)
    assert not marker.exists()

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


@pytest.mark.parametrize("switch,registered", [
    ("poison={name: blend, epsilon: 32}", "genlab-ebm-digits-poisoned-blend"),
    ("train_dataset={name: shapes, image_size: 32, samples_per_class: 10}", "genlab-ebm-digits-from-shapes"),
])
def test_job_trains_on_a_poisoned_or_another_dataset(switch, registered, mlflow_store, tmp_path, monkeypatch, capsys):
    tiny = ["iterations=2", "model.nf=4", "batch_size=4", "bank_size=8", "langevin_steps=2", "log_every=1",
            "checkpoint_every=1", "purify_steps=2", "grid_size=2", "device=cpu"]
    job = importlib.util.module_from_spec(spec := importlib.util.spec_from_file_location("job", REPO / "jobs" / "train_ebm.py"))
    spec.loader.exec_module(job)
    monkeypatch.setattr(sys, "argv", ["train_ebm.py", "--config", str(REPO / "conf" / "train_ebm.yaml"),
                                      "--out", str(tmp_path / "out"), *tiny, switch])
    assert job.main() == 0
    printed = capsys.readouterr().out
    assert f"registered {registered} version 1" in printed
    assert ("poisoned by blend: 115 rows" in printed) == ("poison" in switch)  # 8% of the 1,438 digits
    assert load_ebm(tmp_path / "out" / "model").config.channels == 1  # shapes (RGB 32x32) -> digits' grey 16x16


# ---------------------------------------------------------------- the training job (slow)


@pytest.mark.slow
def test_training_job_resumes_after_kill_and_registers_the_model(trained_ebm, monkeypatch, tmp_path):
    cfg = load_config(EbmJobConfig, REPO / "conf" / "train_ebm.yaml")
    resumed_at = int(trained_ebm.killed_at_checkpoint.split("-")[1])
    assert 0 < resumed_at < cfg.iterations and resumed_at % cfg.checkpoint_every == 0
    assert "resuming ebm training from" in trained_ebm.resume_output
    assert f"(iteration {resumed_at})" in trained_ebm.resume_output  # from the checkpoint, not from 0
    client = MlflowClient(trained_ebm.tracking_uri)
    (run,) = client.search_runs([client.get_experiment_by_name("train-ebm").experiment_id])
    assert run.info.status == "FINISHED" and run.data.tags["genlab.resumed_from"] == str(resumed_at)
    history = client.get_metric_history(run.info.run_id, "energy_diff")
    assert max(m.step for m in history) == cfg.iterations and min(m.step for m in history) == cfg.log_every
    by_step: dict[int, set[float]] = {}
    for metric in history:
        by_step.setdefault(metric.step, set()).add(metric.value)
    assert all(len(values) == 1 for values in by_step.values())  # steps re-run after the kill repeat exactly
    for name in ("energy_data", "energy_samples", "grad_norm"):
        assert client.get_metric_history(run.info.run_id, name)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ebm", "samples", "purified"} <= artifacts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_ebm.tracking_uri)
    monkeypatch.setenv("GENLAB_MODEL_CACHE", str(tmp_path / "models"))
    path = resolve_ebm_checkpoint("genlab-ebm-digits", "latest")
    assert load_checkpoint(path, kind="ebm")[1]["files"] == load_checkpoint(trained_ebm.out_dir / "model")[1]["files"]
    rerun = subprocess.run([sys.executable, str(REPO / "jobs" / "train_ebm.py"), "--out", str(trained_ebm.out_dir)],
                           cwd=REPO, env={**os.environ, "MLFLOW_TRACKING_URI": trained_ebm.tracking_uri},
                           capture_output=True, text=True, timeout=600)
    assert rerun.returncode == 0 and "nothing to do" in rerun.stdout
    assert len(client.search_model_versions("name = 'genlab-ebm-digits'")) == 1


@pytest.mark.slow
def test_trained_ebm_moves_images_as_step_size_and_steps_predict(trained_ebm, digits):
    model = load_ebm(trained_ebm.out_dir / "model")
    sampler = LangevinSampler(model, step_size=EPS, temperature=1e-4)
    train = digits[0]
    x0, rows = to_tensor(train.images[:128]), np.arange(128)
    # One step is exactly x1 = x0 - (eps^2 / 2) grad G(x0) / tau + eps * xi; the zero-energy chain isolates eps * xi.
    noise = LangevinSampler(zero_energy_net()).run(x0, steps=1, seed=0, row_ids=rows).snapshots[1] - x0
    x1 = sampler.run(x0, steps=1, seed=0, row_ids=rows).snapshots[1]
    torch.testing.assert_close(x1 - x0 - noise, -(EPS ** 2 / 2) * sampler.energy_gradient(x0), rtol=1e-4, atol=1e-6)
    # After T steps noise alone would spread each pixel by eps * sqrt(T); the trained energy pulls the chain
    # back towards its image (mid-run dynamics), so the spread is smaller but not zero ...
    chain = sampler.run(x0, steps=EBM_PURIFY_T, seed=0, row_ids=rows).snapshots[EBM_PURIFY_T]
    spread = float((chain - x0).pow(2).mean().sqrt())
    assert 0.25 * EPS * math.sqrt(EBM_PURIFY_T) < spread < EPS * math.sqrt(EBM_PURIFY_T)
    # ... and each image stays in its own mode: its nearest training image is still itself.
    distances = torch.cdist(chain.clamp(-1, 1).flatten(1), to_tensor(train.images).flatten(1))
    assert (distances.argmin(1) == torch.as_tensor(rows)).float().mean() > 0.95


@pytest.mark.slow
def test_ebm_purifier_halves_blend_poison_success_within_3_points_of_accuracy(ebm_purified_blend, blend_poisoned,
                                                                                digits):
    accuracy_none, success_none = blend_poisoned.undefended
    accuracy_ebm, success_ebm = blend_outcome(ebm_purified_blend, blend_poisoned.labels, blend_poisoned.poison, digits)
    print(f"blend on digits, small CNN: (natural accuracy, poison success) none {blend_poisoned.undefended}, "
          f"ebm {(accuracy_ebm, success_ebm)}")
    assert success_none > 0.8  # the attack works undefended
    assert success_ebm <= 0.5 * success_none
    assert accuracy_ebm >= accuracy_none - 0.03


@pytest.mark.slow
def test_bf16_purification_removes_the_blend_trigger_as_fp32_does_within_seed_noise(trained_ebm, digits, blend_poisoned):
    train, poison = digits[0], blend_poisoned.poison
    clean = train.images[poison.base_indices].astype(np.float32)
    trigger = poison.images.astype(np.float32) - clean  # the trigger each poison carries (after clipping)
    settings = EbmSettings(checkpoint=str(trained_ebm.out_dir / "model"), langevin_steps=[EBM_PURIFY_T], device="cpu")

    def purification_statistics(precision: str, seed: int) -> tuple[float, float]:
        """(share of the trigger left in the purified poisons: 1 intact, 0 gone; mean absolute change, pixels)."""
        purifier = EbmPurifier(settings.model_copy(update={"precision": precision}), seed=seed)
        purified = purifier.purify(poison.images, poison.base_indices)[EBM_PURIFY_T].astype(np.float32)
        trigger_left = float(((purified - clean) * trigger).sum() / (trigger * trigger).sum())
        return trigger_left, float(np.abs(purified - poison.images).mean())

    fp32 = np.array([purification_statistics("fp32", seed) for seed in (0, 1, 2)])
    bf16 = np.array(purification_statistics("bf16", 0))
    print(f"(trigger left, mean abs change): fp32 seeds 0-2 {fp32.tolist()}, bf16 seed 0 {bf16.tolist()}")
    assert fp32[:, 0].max() < 0.5  # Psi_150 removes most of the trigger
    seed_noise = fp32.max(axis=0) - fp32.min(axis=0)
    assert (np.abs(bf16 - fp32[0]) <= seed_noise).all()  # bf16 differs from fp32 less than seeds differ
