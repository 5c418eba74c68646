"""Plain functions and paths the test files share (the fixtures are in the conftest.py files): the checkout's
root and Python, a job run as a subprocess (or in process) against its own MLflow store, and PoisonSet files
read back or rewritten."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]  # the checkout: jobs/, conf/, platform/, bench/
PYTHON = sys.executable


def job_env(tracking_uri: str, **variables: str) -> dict[str, str]:
    """Return the environment for a job subprocess: this one's, with the MLflow store `tracking_uri`, this
    checkout's genlab first on PYTHONPATH, and `variables` (e.g. OMP_NUM_THREADS="1")."""
    return {**os.environ, "MLFLOW_TRACKING_URI": tracking_uri, **variables,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "platform"), os.environ.get("PYTHONPATH")]))}


def sqlite_store(folder: Path) -> str:
    """Return the tracking URI of a sqlite MLflow store in `folder` (folder/mlflow.db, created on first use)."""
    return f"sqlite:///{folder / 'mlflow.db'}"


def run_job(args: list[str], tracking_uri: str, *, timeout: float) -> subprocess.CompletedProcess:
    """Run `python *args` (a script of jobs/ or bench/ and its arguments) in the checkout, logging to the MLflow
    store `tracking_uri`; return the finished process (stdout and stderr as text)."""
    return subprocess.run([PYTHON, *args], cwd=REPO, env=job_env(tracking_uri), capture_output=True, text=True,
                          timeout=timeout)


def run_job_main(job: str, args: list[str], monkeypatch) -> int:
    """Load jobs/`job` (e.g. "train_ebm.py") as a module and return the exit code of its main(), run in this
    process with sys.argv = [job, *args] (set through pytest's `monkeypatch`)."""
    spec = importlib.util.spec_from_file_location("job", REPO / "jobs" / job)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(sys, "argv", [job, *args])
    return module.main()


def rewrite_npz(path: Path, **arrays: np.ndarray) -> None:
    """Rewrite the .npz file at `path` in place with `arrays` replacing (or adding) entries of the same names."""
    with np.load(path, allow_pickle=False) as data:
        entries = {name: data[name] for name in data.files}
    entries.update(arrays)
    np.savez(path, **entries)


def load_poisons(path: Path, train):
    """Return the PoisonSet file at `path` read and validated against the ImageSet `train` (its size, image shape,
    class count, hash and clean images)."""
    from genlab.data.poisonset import load_poison_set

    return load_poison_set(path, train_size=len(train), image_shape=train.shape, num_classes=len(train.classes),
                           dataset_hash=train.hash, clean_images=train.images)
