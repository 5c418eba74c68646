"""A sweep config (the default, or another in conf/) run in-process against a sqlite MLflow store of a test's own
(the sweep fixtures of integration/test_sweep.py and test_sweep_defenses.py)."""

from __future__ import annotations

import os
from pathlib import Path

from genlab.config import load_config
from genlab.sweep.config import SweepConfig
from genlab.sweep.runner import run_sweep
from tests.helpers import REPO, sqlite_store


def run_default_sweep(tmp: Path, overrides: list[str], config: str = "conf/defense_sweep.yaml"):
    """Run `config` (default: conf/defense_sweep.yaml) with `overrides` (work dir and outputs under `tmp`); return
    (the SweepResult, the store's URI). MLFLOW_TRACKING_URI points at the store only while the sweep runs."""
    uri = sqlite_store(tmp)
    os.environ["MLFLOW_TRACKING_URI"] = uri
    try:
        cfg = load_config(SweepConfig, REPO / config, overrides + [f"work_dir={tmp / 'work'}"])
        return run_sweep(cfg, tmp / "out"), uri
    finally:
        os.environ.pop("MLFLOW_TRACKING_URI")


def run_sweep_in(tmp_path_factory, name: str, overrides: list[str]):
    """Run the default sweep config with `overrides` in a fresh temp dir `name`; return (result, store URI, the dir)."""
    tmp = tmp_path_factory.mktemp(name)
    result, uri = run_default_sweep(tmp, overrides)
    return result, uri, tmp
