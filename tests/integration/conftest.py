"""Fixtures of the integration lane: a real local Ray session, a temp sqlite MLflow store, the small EBM trained
once per session by the real job, and the blend-poisoned digits before and after that EBM's purification
(used by integration/test_ebm.py and integration/test_ddpm.py)."""

from __future__ import annotations

import os

import pytest

from tests.helpers import REPO, sqlite_store
from tests.integration.generative import (
    EBM_PURIFY_T,
    BlendPoisonedDigits,
    TrainedEbm,
    blend_outcome,
    train_killed_then_resumed,
)


@pytest.fixture(scope="session")
def ray_session():
    """A real local Ray (2 CPUs, 500 MB object store) shared by every test that asks for it."""
    import ray

    if not ray.is_initialized():
        os.environ.setdefault("PYTHONPATH", str(REPO / "platform"))
        ray.init(num_cpus=2, object_store_memory=500_000_000, include_dashboard=False,
                 runtime_env={"env_vars": {"PYTHONPATH": str(REPO / "platform")}})
    yield ray


@pytest.fixture
def mlflow_store(tmp_path, monkeypatch):
    """A fresh sqlite MLflow store in tmp_path, set through MLFLOW_TRACKING_URI; yields the URI."""
    uri = sqlite_store(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri


@pytest.fixture(scope="session")
def trained_ebm(tmp_path_factory) -> TrainedEbm:
    """Run jobs/train_ebm.py (conf/train_ebm.yaml, a few CPU minutes), SIGKILL it after its first checkpoint, rerun it to the end."""
    return TrainedEbm(*train_killed_then_resumed("ebm", tmp_path_factory.mktemp("train_ebm")))


@pytest.fixture(scope="session")
def blend_poisoned(digits) -> BlendPoisonedDigits:
    """The blend-poisoned digits training set and the undefended small CNN's outcome on it."""
    from genlab.attacks import BlendConfig, craft_poisons

    train = digits[0]
    poison = craft_poisons(BlendConfig(), train, seed=0)
    poisoned = train.replace_rows(poison.base_indices, poison.images, poison.labels)
    return BlendPoisonedDigits(poisoned.images, poisoned.labels, poison,
                               blend_outcome(poisoned.images, poisoned.labels, poison, digits))


@pytest.fixture(scope="session")
def ebm_purified_blend(trained_ebm, blend_poisoned, tmp_path_factory):
    """uint8 images: the blend-poisoned training set after PureGen-EBM at T = EBM_PURIFY_T (seed 0), the EBM
    found through the MLflow model registry the training job registered it in. integration/test_ddpm.py's
    PureGen-Naive runs its DDPM chain on these, so the 150-step chain over every row runs once."""
    import numpy as np

    from genlab.purify.ebm import EbmPurifier, EbmSettings

    settings = EbmSettings(registered_model="genlab-ebm-digits", langevin_steps=[EBM_PURIFY_T], device="cpu")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("MLFLOW_TRACKING_URI", trained_ebm.tracking_uri)
        patch.setenv("GENLAB_MODEL_CACHE", str(tmp_path_factory.mktemp("models")))
        purifier = EbmPurifier(settings, seed=0)
        rows = np.arange(len(blend_poisoned.images))
        return purifier.purify(blend_poisoned.images, rows)[EBM_PURIFY_T]
