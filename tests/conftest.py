"""Shared fixtures: a real local Ray session, a temp sqlite MLflow store, the tiny digits data."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = sys.executable


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
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    import mlflow

    mlflow.set_tracking_uri(uri)
    yield uri


@pytest.fixture(scope="session")
def digits():
    """(train, test) ImageSets of the embedded digits dataset at 16x16."""
    from genlab.data import DatasetConfig, load_dataset

    return load_dataset(DatasetConfig())
