"""PureGen-EBM with real training: the training job (in process on tiny settings; as a subprocess, killed and
resumed, with conf/train_ebm.yaml), and the EBM it trains moving images as the spec predicts and defeating the
blend attack.

The tests share one EBM trained by the real job with conf/train_ebm.yaml (digits 16x16, a few CPU
minutes), killed after its first checkpoint and restarted (the session fixture `trained_ebm` in
tests/integration/conftest.py, shared with integration/test_ddpm.py), so one training run checks
kill/resume, the registry and, most of all, that the purifier defeats the blend attack.
Torch runs single-threaded here: on a shared 2-core machine extra threads only oversubscribe.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from genlab.checkpoints import load_checkpoint
from genlab.config import load_config
from genlab.data.convert import to_tensor
from genlab.purify.baselines import IdentityPurifier
from genlab.purify.diagnostics import drift_along_trigger, energy_gap_sd, trigger_kept
from genlab.purify.ebm import EbmPurifier, EbmSettings, load_ebm, resolve_ebm_checkpoint
from genlab.purify.puregen import EnergyModelSettings, EnergyScorer
from genlab.samplers.langevin import LangevinSampler
from genlab.sweep.provisioning import EbmJobConfig
from tests.energy_nets import EPS, zero_energy_net
from tests.helpers import REPO
from tests.integration.generative import (
    EBM_PURIFY_T,
    assert_rerun_does_nothing,
    assert_resumed_once,
    blend_outcome,
    train_with_data_switch,
)

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize("switch,registered", [
    ("poison={name: blend, epsilon: 32}", "genlab-ebm-digits-poisoned-blend"),
    ("train_dataset={name: shapes, image_size: 32, samples_per_class: 10}", "genlab-ebm-digits-from-shapes"),
])
def test_job_trains_on_a_poisoned_or_another_dataset(switch, registered, mlflow_store, tmp_path, monkeypatch, capsys):
    tiny = ["iterations=2", "model.nf=4", "batch_size=4", "bank_size=8", "langevin_steps=2", "log_every=1",
            "checkpoint_every=1", "purify_steps=2", "grid_size=2", "device=cpu"]
    model = train_with_data_switch("train_ebm", tiny, switch, registered, tmp_path / "out", monkeypatch, capsys)
    assert load_ebm(model).config.channels == 1  # shapes (RGB 32x32) -> digits' grey 16x16


# ---------------------------------------------------------------- the trained EBM


def test_training_job_resumes_after_kill_and_registers_the_model(trained_ebm, monkeypatch, tmp_path):
    cfg = load_config(EbmJobConfig, REPO / "conf" / "train_ebm.yaml")
    client, run = assert_resumed_once(trained_ebm, "ebm", cfg, "energy_diff")
    for name in ("energy_data", "energy_samples", "grad_norm"):
        assert client.get_metric_history(run.info.run_id, name)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"ebm", "samples", "purified"} <= artifacts

    monkeypatch.setenv("MLFLOW_TRACKING_URI", trained_ebm.tracking_uri)
    monkeypatch.setenv("GENLAB_MODEL_CACHE", str(tmp_path / "models"))
    path = resolve_ebm_checkpoint("genlab-ebm-digits", "latest")
    assert load_checkpoint(path, kind="ebm")[1]["files"] == load_checkpoint(trained_ebm.out_dir / "model")[1]["files"]
    assert_rerun_does_nothing("train_ebm.py", trained_ebm.out_dir, client, "genlab-ebm-digits")


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


def test_ebm_purifier_halves_blend_poison_success_within_3_points_of_accuracy(ebm_purified_blend, blend_poisoned,
                                                                                digits):
    accuracy_none, success_none = blend_poisoned.undefended
    accuracy_ebm, success_ebm = blend_outcome(ebm_purified_blend, blend_poisoned.labels, blend_poisoned.poison, digits)
    print(f"blend on digits, small CNN: (natural accuracy, poison success) none {blend_poisoned.undefended}, "
          f"ebm {(accuracy_ebm, success_ebm)}")
    assert success_none > 0.8  # the attack works undefended
    assert success_ebm <= 0.5 * success_none
    assert accuracy_ebm >= accuracy_none - 0.03


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


def test_trigger_diagnostics_see_the_ebm_remove_blend_and_identity_keep_it(trained_ebm, digits, blend_poisoned):
    probe = digits[1].images[:100]
    triggered = blend_poisoned.poison.trigger.apply(probe, 1.0)
    checkpoint = str(trained_ebm.out_dir / "model")
    purifier = EbmPurifier(EbmSettings(checkpoint=checkpoint, langevin_steps=[10, EBM_PURIFY_T], device="cpu"), seed=0)
    kept = trigger_kept(purifier, probe, triggered)
    scorer = EnergyScorer(EnergyModelSettings(checkpoint=checkpoint, device="cpu"))
    gap, drift = energy_gap_sd(scorer, probe, triggered), drift_along_trigger(purifier.sampler, probe, triggered)
    print(f"blend trigger kept by Psi_T: {kept}; energy gap {gap:.1f} sd; drift takes back {drift:.4f} per step")
    assert trigger_kept(IdentityPurifier(), probe, triggered) == {0: 1.0}
    assert kept[EBM_PURIFY_T] < 0.5 < kept[10]  # the chain removes the trigger as it runs, not in its first steps
    assert gap > 3  # the EBM's energy sees the blended images as off the data ...
    assert energy_gap_sd(scorer, probe, probe) == 0  # ... and nothing where there is no trigger
    assert drift > 0.005  # its downhill direction points back along the trigger (150 steps at 0.5% would halve it)
